// The metrics page's charts, drawn from the figures the server put in #chart-data; drawn again
// whenever the filter form swaps in new figures (HTMX).
(function () {
  var narrow = function () { return window.matchMedia("(max-width: 640px)").matches; };
  var layout = function (extra) {
    return Object.assign({ margin: { l: 52, r: 16, t: 8, b: 44 }, height: narrow() ? 260 : 300, font: { family: "system-ui, sans-serif", size: 12 },
      paper_bgcolor: "#fff", plot_bgcolor: "#fff", legend: { orientation: "h", y: -0.22 } }, extra || {});
  };
  var cfg = { displayModeBar: false, responsive: true };
  var pretty = function (s) { return String(s).replace(/_/g, " "); };
  var empty = function (id, text) { document.getElementById(id).innerHTML = '<p class="muted">' + text + "</p>"; };

  function render() {
    var el = document.getElementById("chart-data");
    if (!el || !window.Plotly) return;
    var d = JSON.parse(el.textContent);
    var months = d.flow.map(function (r) { return r.month; });
    Plotly.newPlot("chart-flow", [
      { type: "bar", name: "new", x: months, y: d.flow.map(function (r) { return r.new; }), marker: { color: "#93c5fd" } },
      { type: "bar", name: "closed", x: months, y: d.flow.map(function (r) { return -r.closed; }), marker: { color: "#fca5a5" } },
      { type: "scatter", mode: "lines+markers", name: "net", x: months, y: d.flow.map(function (r) { return r.net; }), line: { color: "#2563eb", width: 3 } }
    ], layout({ barmode: "relative" }), cfg);
    Plotly.newPlot("chart-sla", [{ type: "scatter", mode: "lines+markers", name: "SLA met", x: months,
      y: d.flow.map(function (r) { return r.sla_rate === null ? null : r.sla_rate * 100; }), line: { color: "#047857", width: 3 } }],
      layout({ yaxis: { range: [0, 100], ticksuffix: "%" } }), cfg);

    var c = d.cohort.rows.filter(function (r) { return r.rate !== null; });
    var cohortTrace = function (rows, name, filled) {
      return { type: "scatter", mode: "markers", name: name, x: rows.map(function (r) { return r.month; }),
        y: rows.map(function (r) { return r.rate * 100; }),
        error_y: { type: "data", symmetric: false, color: "#64748b", thickness: 1.5, width: 4,
          array: rows.map(function (r) { return (r.ci_high - r.rate) * 100; }), arrayminus: rows.map(function (r) { return (r.rate - r.ci_low) * 100; }) },
        customdata: rows.map(function (r) { return [r.converted, r.leads, r.ci_low * 100, r.ci_high * 100]; }),
        hovertemplate: "%{x}: %{y:.1f}% (%{customdata[0]} of %{customdata[1]})<br>95% interval %{customdata[2]:.1f}–%{customdata[3]:.1f}%<extra></extra>",
        marker: { size: 9, color: filled ? "#7c3aed" : "#fff", line: { color: "#7c3aed", width: 2 } } };
    };
    if (!c.length) { empty("chart-cohort", "No leads created in this period."); } else {
      Plotly.newPlot("chart-cohort", [
        cohortTrace(c.filter(function (r) { return r.mature; }), "became " + d.cohort.target, true),
        cohortTrace(c.filter(function (r) { return !r.mature; }), "still maturing", false)
      ], layout({ yaxis: { ticksuffix: "%", rangemode: "tozero", title: { text: "converted" } }, xaxis: { type: "category" } }), cfg);
    }

    var v = d.velocity.filter(function (r) { return r.median_hours !== null; });
    if (!v.length) { empty("chart-velocity", "No lead moved on from a stage in this period."); } else {
      Plotly.newPlot("chart-velocity", [{ type: "bar", orientation: "h", name: "median days",
        y: v.map(function (r) { return pretty(r.stage); }), x: v.map(function (r) { return r.median_hours / 24; }),
        text: v.map(function (r) { return (r.median_hours / 24).toFixed(1) + " d"; }), textposition: "outside", cliponaxis: false,
        customdata: v.map(function (r) { return [r.p90_hours / 24, r.count, r.pending]; }),
        hovertemplate: "%{y}: median %{x:.1f} days, 90th percentile %{customdata[0]:.1f} days<br>%{customdata[1]} moved on, %{customdata[2]} still there<extra></extra>",
        marker: { color: "#0ea5e9" } }],
        layout({ xaxis: { title: { text: "median days in stage" }, range: [0, 1.18 * Math.max.apply(null, v.map(function (r) { return r.median_hours / 24; }))] }, yaxis: { autorange: "reversed", automargin: true }, margin: { l: 90, r: 16, t: 8, b: 52 } }), cfg);
    }

    var stages = d.funnel.stages;
    if (!d.funnel.rows.length) { empty("chart-funnel", "No leads created in this period."); } else {
      Plotly.newPlot("chart-funnel", d.funnel.rows.slice(0, 8).map(function (r) {
        return { type: "bar", name: pretty(r.source), x: stages, y: stages.map(function (s) { return r.reached[s]; }) };
      }), layout({ barmode: "group", showlegend: true, yaxis: { title: { text: "leads reaching stage" } } }), cfg);
    }

  }

  function renderEconomics() {
    var el = document.getElementById("economics-data");
    if (!el || !window.Plotly) return;
    var econ = JSON.parse(el.textContent).campaign.filter(function (r) { return r.spend > 0; });
    if (!econ.length) { empty("chart-econ", "No campaign spend recorded for this period: add spend (config or import) to see CPL, CAC and ROAS."); return; }
    var names = econ.map(function (r) { return pretty(r.group); });
    Plotly.newPlot("chart-econ", [
      { type: "bar", name: "CPL", x: names, y: econ.map(function (r) { return r.cpl; }), marker: { color: "#93c5fd" } },
      { type: "bar", name: "CAC ÷ 10", x: names, y: econ.map(function (r) { return r.cac === null ? null : r.cac / 10; }), marker: { color: "#c4b5fd" } },
      { type: "scatter", mode: "markers", name: "ROAS", yaxis: "y2", x: names, y: econ.map(function (r) { return r.roas; }), marker: { color: "#047857", size: 12 } }
    ], layout({ barmode: "group", yaxis: { title: { text: "CPL, CAC ÷ 10" } }, yaxis2: { overlaying: "y", side: "right", title: { text: "ROAS" }, rangemode: "tozero" }, margin: { l: 56, r: 56, t: 8, b: 60 } }), cfg);
  }

  function drawAll() { render(); renderEconomics(); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", drawAll); else drawAll();
  // The filter form swaps in new figures (#metrics-body); CPL, CAC and ROAS arrive after them (#economics).
  document.body.addEventListener("htmx:afterSettle", function (e) {
    if (e.target && e.target.id === "metrics-body") render();
    if (document.getElementById("economics-data")) renderEconomics();
  });
})();
