// Plain JavaScript, no framework: a confirmation before a decision that cannot be taken back.
document.addEventListener("submit", function (event) {
  var action = event.target.getAttribute("action") || "";
  if (/\/proposals\/\d+\/(approve|reject)$/.test(action) && !window.confirm("确认此决定？不能撤回。\nConfirm this decision? It cannot be taken back.")) {
    event.preventDefault();
  }
});
