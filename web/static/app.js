/* 保学 page script (no build step): keyboard shortcuts declared in the page with
   data-key="a" on a button or link; they do not fire while typing in a field. */
document.addEventListener("keydown", function (e) {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  var t = e.target;
  var typing = t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable);
  if (typing && e.key !== "Escape") return;
  var el = document.querySelector('[data-key="' + (e.key.length === 1 ? e.key.toLowerCase() : e.key) + '"]');
  if (!el || el.disabled) return;
  e.preventDefault();
  if (el.tagName === "INPUT" || el.tagName === "TEXTAREA") { el.focus(); el.select && el.select(); } else { el.click(); }
});
/* After htmx swaps in new content, focus the element marked autofocus inside it. */
document.addEventListener("htmx:afterSettle", function () {
  var f = document.querySelector("[hx-target] [autofocus], #review-item [autofocus]");
  if (f) f.focus();
});
