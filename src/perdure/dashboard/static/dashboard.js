// Ask before any action form is sent. Kept in a file (not inline) so the page's
// Content-Security-Policy can forbid inline scripts altogether.
"use strict";
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
