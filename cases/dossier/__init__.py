"""The case dossier (卷宗) an auditor can verify (DOMAIN §8.3–8.4): the PDF/A file with its signed
manifest (``build``, ``pdf``, ``manifest``), its verification (``verify``), the closed-loop checks
(``checks``), inspector sampling (``sampling``) and the batch job (``jobs``)."""
