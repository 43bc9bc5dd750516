/* 保学 page script (no build step): keyboard shortcuts declared in the page with
   data-key="a" on a button or link; they do not fire while typing in a field. */
document.addEventListener("keydown", function (e) {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  var t = e.target;
  var typing = t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable);
  // Enter in a choice list sends the form with its default (first) button, as Enter in a text
  // field does: a choice field is corrected with C, the arrow keys and Enter.
  if (typing && e.key === "Enter" && t.tagName === "SELECT" && t.form && t.form.getAttribute("hx-post") && window.htmx) {
    var first = t.form.querySelector('button[type="submit"]');
    e.preventDefault();
    if (!first || document.querySelector(".htmx-request, .htmx-swapping, .htmx-settling")) return;
    var sent = {};
    sent[first.name] = first.value;
    htmx.ajax("POST", t.form.getAttribute("hx-post"), {source: t.form, target: t.form.getAttribute("hx-target"),
                                                       swap: t.form.getAttribute("hx-swap") || "innerHTML", values: sent});
    return;
  }
  if (typing && e.key !== "Escape") return;
  var el = document.querySelector('[data-key="' + (e.key.length === 1 ? e.key.toLowerCase() : e.key) + '"]');
  if (!el || el.disabled) return;
  e.preventDefault();
  // While the previous decision is on its way or being swapped in, a key waits for nothing: it is
  // dropped rather than sent twice or sent as a full-page form.
  if (document.querySelector(".htmx-request, .htmx-swapping, .htmx-settling")) return;
  if (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.tagName === "SELECT") { el.focus(); el.select && el.select(); return; }
  var form = el.form;
  if (form && form.getAttribute("hx-post") && window.htmx) {
    var values = {};
    if (el.name) values[el.name] = el.value;
    htmx.ajax("POST", form.getAttribute("hx-post"), {source: form, target: form.getAttribute("hx-target"),
                                                    swap: form.getAttribute("hx-swap") || "innerHTML", values: values});
    return;
  }
  el.click();
});
/* After htmx swaps in new content, focus the element marked autofocus inside it. */
document.addEventListener("htmx:afterSettle", function () {
  var f = document.querySelector("[hx-target] [autofocus], #review-item [autofocus]");
  if (f) f.focus();
});

/* On a phone the navigation scrolls sideways: bring the current entry into view. */
document.addEventListener("DOMContentLoaded", function () {
  var nav = document.querySelector("nav.main"), cur = nav && nav.querySelector("a.active");
  if (cur && nav.scrollWidth > nav.clientWidth) {
    nav.scrollLeft = Math.max(0, cur.offsetLeft - (nav.clientWidth - cur.offsetWidth) / 2);
  }
});
