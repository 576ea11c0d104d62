// The live feed of the events page (a file of its own: the CSP allows no inline script).
(function () {
  var feed = document.getElementById("feed"), state = document.getElementById("feed-state"),
      cursor = feed.dataset.cursor, source = feed.dataset.source;
  function cell(row, text, cls) {
    var td = row.insertCell(-1), span = document.createElement(cls ? "span" : "code");
    if (cls === null) { td.textContent = text; return td; }
    span.textContent = text; if (cls) span.className = "badge " + text; if (text) td.appendChild(span);
    return td;
  }
  function add(e) {
    var row = feed.insertRow(0);
    cell(row, e.at, null);
    var link = document.createElement("a"); link.href = e.session_url; link.textContent = e.session_id.slice(0, 8);
    row.insertCell(-1).appendChild(link);
    cell(row, String(e.seq), null); cell(row, e.kind, ""); cell(row, e.action, null);
    cell(row, e.outcome, "badge"); cell(row, e.reason, null);
  }
  function poll() {
    fetch(source + "?cursor=" + encodeURIComponent(cursor), {credentials: "same-origin"})
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (page) { page.events.forEach(add); cursor = page.cursor; state.textContent = "live";
                               setTimeout(poll, page.events.length ? 200 : 2000); })
      .catch(function () { state.textContent = "disconnected, retrying"; setTimeout(poll, 5000); });
  }
  setTimeout(poll, 1000);
})();
