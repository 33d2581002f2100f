// Allowed/denied decisions per minute as stacked bars on a plain canvas (no library).
// drawDecisions(canvas, minutes): minutes = [{minute: epochSeconds, allowed, denied}], oldest first.

const COLOURS = { allowed: "#22c55e", denied: "#ef4444", grid: "#24314a", text: "#8b97ad" };

const TICKS = 4;

// The smallest whole step of 1, 2 or 5 x 10^k with TICKS steps reaching `peak`.
function tickStep(peak) {
  const raw = Math.max(1, peak) / TICKS;
  const power = 10 ** Math.floor(Math.log10(raw));
  for (const step of [1, 2, 5, 10]) {
    if (step * power >= raw) return Math.max(1, step * power);
  }
  return 10 * power;
}

function clock(epochSeconds) {
  const d = new Date(epochSeconds * 1000);
  return String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0");
}

export function drawDecisions(canvas, minutes) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 600;
  const height = canvas.clientHeight || 200;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const g = canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, width, height);

  const left = 34, right = 8, top = 22, bottom = 22;
  const plotW = Math.max(10, width - left - right);
  const plotH = Math.max(10, height - top - bottom);
  const peak = Math.max(0, ...minutes.map((m) => m.allowed + m.denied));
  const step = tickStep(peak);
  const yMax = step * TICKS;

  g.font = "11px 'DejaVu Sans', sans-serif";
  g.textBaseline = "middle";
  g.strokeStyle = COLOURS.grid;
  g.fillStyle = COLOURS.text;
  g.lineWidth = 1;
  for (let i = 0; i <= TICKS; i++) {
    const y = top + plotH - (plotH * i) / TICKS;
    g.beginPath();
    g.moveTo(left, Math.round(y) + 0.5);
    g.lineTo(left + plotW, Math.round(y) + 0.5);
    g.stroke();
    g.textAlign = "right";
    g.fillText(String(step * i), left - 6, y);
  }

  const n = Math.max(1, minutes.length);
  const slot = plotW / n;
  const barW = Math.max(2, slot * 0.72);
  minutes.forEach((m, i) => {
    const x = left + i * slot + (slot - barW) / 2;
    const hAllowed = (m.allowed / yMax) * plotH;
    const hDenied = (m.denied / yMax) * plotH;
    g.fillStyle = COLOURS.allowed;
    g.fillRect(x, top + plotH - hAllowed, barW, hAllowed);
    g.fillStyle = COLOURS.denied;
    g.fillRect(x, top + plotH - hAllowed - hDenied, barW, hDenied);
    const labelEvery = n > 20 ? 5 : n > 10 ? 2 : 1;
    if ((n - 1 - i) % labelEvery === 0) {
      g.fillStyle = COLOURS.text;
      g.textAlign = "center";
      g.fillText(clock(m.minute), x + barW / 2, top + plotH + 12);
    }
  });

  // Legend, top right.
  g.textAlign = "left";
  let x = left + plotW - 150;
  for (const [label, colour] of [["allowed", COLOURS.allowed], ["denied", COLOURS.denied]]) {
    g.fillStyle = colour;
    g.fillRect(x, 6, 10, 10);
    g.fillStyle = COLOURS.text;
    g.fillText(label, x + 14, 11);
    x += 75;
  }
}
