// Progressive enhancement only: every page works without this file.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // "/" jumps to the search box where there is one (not while typing in a field).
  const search = document.querySelector('input[type="search"]');
  document.addEventListener("keydown", (event) => {
    const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement.tagName);
    if (search && event.key === "/" && !typing) {
      event.preventDefault();
      search.focus();
    }
  });
  // A retry writes to the carrier: a second click must not send it twice.
  for (const form of document.querySelectorAll('form[action$="/retry"]')) {
    form.addEventListener("submit", () => {
      for (const button of form.querySelectorAll("button")) button.disabled = true;
    });
  }
});
