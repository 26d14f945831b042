// The ML page's charts (templates/ml/ml.html): a file, not an inline script (CSP).
(function () {
  const bins = JSON.parse(document.getElementById("ml-reliability-data").textContent);
  const hist = JSON.parse(document.getElementById("ml-ece-data").textContent);
  const filled = bins.filter(b => b.count > 0);
  const width = Math.min(640, document.querySelector("main").clientWidth || 640);
  new uPlot({
    width, height: 300, title: "observed rate vs predicted probability",
    scales: {x: {time: false, range: [0, 1]}, y: {range: [0, 1]}},
    series: [{label: "predicted"},
             {label: "perfect", stroke: "#999", dash: [4, 4]},
             {label: "observed", stroke: "#2a7", points: {show: true, size: 6}}],
  }, [[0, ...filled.map(b => b.mean_predicted), 1],
      [0, ...filled.map(b => b.mean_predicted), 1],
      [null, ...filled.map(b => b.observed_rate), null]],
     document.getElementById("ml-reliability"));
  new uPlot({
    width, height: 220, title: "live ECE",
    series: [{}, {label: "ECE", stroke: "#c50"}],
    scales: {y: {range: [0, 0.2]}},
  }, [hist.map(h => h.ts), hist.map(h => h.ece)], document.getElementById("ml-ece-history"));
})();
