// Refreshes the parts of a page marked data-live (lease states, node states) every few
// seconds by fetching the same page and swapping those parts in. Pages work without it.
(function () {
  'use strict';
  var live = document.querySelectorAll('[data-live]');
  if (!live.length || !window.fetch || !window.DOMParser) return;
  var period = 3000;
  function refresh() {
    if (document.hidden) return schedule();
    fetch(window.location.href, { credentials: 'same-origin', headers: { 'X-Live': '1' } })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (text) {
        var doc = new DOMParser().parseFromString(text, 'text/html');
        document.querySelectorAll('[data-live]').forEach(function (el) {
          var fresh = el.id && doc.getElementById(el.id);
          // Never replace a part while someone is typing in it.
          if (fresh && !el.contains(document.activeElement)) el.innerHTML = fresh.innerHTML;
        });
      })
      .catch(function () {})
      .then(schedule);
  }
  function schedule() { window.setTimeout(refresh, period); }
  schedule();
})();
