// Live SLA countdowns. The server says what time it is (its clock may be simulated); we keep the offset.
(function () {
  var serverNow = Date.parse(document.body.dataset.now || "");
  var offset = isNaN(serverNow) ? 0 : serverNow - Date.now();
  function fmt(ms) {
    var s = Math.floor(Math.abs(ms) / 1000), d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600),
      m = Math.floor((s % 3600) / 60), sec = s % 60;
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    return (d ? d + "d " : "") + pad(h) + ":" + pad(m) + ":" + pad(sec);
  }
  function tick() {
    var now = Date.now() + offset;
    document.querySelectorAll("[data-due]").forEach(function (el) {
      if (el.dataset.met) return;
      var left = Date.parse(el.dataset.due) - now;
      el.classList.toggle("overdue", left < 0);
      el.textContent = left < 0 ? "overdue " + fmt(left) : fmt(left) + " left";
      var row = el.closest("tr");
      if (row) row.classList.toggle("is-overdue", left < 0);
    });
  }
  tick();
  setInterval(tick, 1000);
})();
