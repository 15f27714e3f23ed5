// Where each video goes on the stage: pure geometry, no DOM (the browser tests call it directly).
//
// Gallery: every remote picture the same size, in the rows and columns that make them largest
// for the stage's shape (two people side by side on a wide screen, one above the other on a
// phone or beside an open drawer). Focus: one or two pictures large (a pinned interpreter beside
// the citizen, the speaker, a shared screen), the others in a strip below. The own picture is
// small, in the corner the person chose; the layout keeps that corner free, so nothing overlaps.
//
// layoutStage({width, height, remote: [ids], focus: [ids], self: id|null, corner, gap})
//   -> {boxes: Map(id -> {x, y, w, h, compact}), strip: "none"|"bottom"}
// Coordinates are CSS pixels from the stage's top-left corner; `corner` is physical:
// "bottom-right", "bottom-left", "top-right", "top-left".

export const ASPECT = 16 / 9;
export const CORNERS = ["bottom-right", "bottom-left", "top-left", "top-right"];
const ALONE_TOP = 80; // room for the "nobody else is here yet" line (room.css .stage-alone)

/** The columns and tile size that make `count` tiles of `aspect` largest in `width` x `height`. */
export function fitGrid(count, width, height, gap = 8, aspect = ASPECT) {
  let best = { cols: 1, rows: count, w: 0, h: 0 };
  if (count < 1 || width <= 0 || height <= 0) return best;
  for (let cols = 1; cols <= count; cols += 1) {
    const rows = Math.ceil(count / cols);
    const w = Math.min((width - gap * (cols - 1)) / cols, ((height - gap * (rows - 1)) / rows) * aspect);
    if (w > best.w) best = { cols, rows, w, h: w / aspect };
  }
  best.w = Math.max(0, Math.floor(best.w));
  best.h = Math.max(0, Math.floor(best.h));
  return best;
}

/** Place `ids` in a grid centred in `box`; the last row, when short, is centred too. */
function grid(ids, box, gap, aspect, out) {
  const g = fitGrid(ids.length, box.w, box.h, gap, aspect);
  const usedH = g.rows * g.h + gap * (g.rows - 1);
  const top = box.y + (box.h - usedH) / 2;
  ids.forEach((id, i) => {
    const row = Math.floor(i / g.cols);
    const inRow = Math.min(g.cols, ids.length - row * g.cols);
    const rowW = inRow * g.w + gap * (inRow - 1);
    const left = box.x + (box.w - rowW) / 2;
    out.set(id, { x: Math.round(left + (i % g.cols) * (g.w + gap)), y: Math.round(top + row * (g.h + gap)),
      w: g.w, h: g.h, compact: false });
  });
}

/** Focus layout in `box`: `main` large, `rest` in one row along the bottom. */
function focused(main, rest, box, gap, aspect, out) {
  if (!rest.length) {
    grid(main, box, gap, aspect, out);
    return;
  }
  const stripH = Math.round(Math.min(180, Math.max(72, box.h * 0.2)));
  grid(main, { x: box.x, y: box.y, w: box.w, h: box.h - stripH - gap }, gap, aspect, out);
  const w = Math.floor(Math.min((box.w - gap * (rest.length - 1)) / rest.length, stripH * aspect));
  const h = Math.floor(Math.min(stripH, w / aspect));
  const rowW = rest.length * w + gap * (rest.length - 1);
  const left = box.x + (box.w - rowW) / 2;
  rest.forEach((id, i) => out.set(id, { x: Math.round(left + i * (w + gap)), y: Math.round(box.y + box.h - h), w, h,
    compact: true }));
}

function area(boxes, ids) {
  let sum = 0;
  for (const id of ids) {
    const b = boxes.get(id);
    if (b) sum += b.w * b.h;
  }
  return sum;
}

function overlaps(a, b) {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

/** The own picture's size: small, landscape on a wide stage, portrait on a tall one (a phone). */
export function selfSize(width, height) {
  if (height > width) {
    const w = Math.round(Math.min(150, Math.max(84, width * 0.28)));
    return { w, h: Math.round(w * 4 / 3) };
  }
  const w = Math.round(Math.min(240, Math.max(128, width * 0.16)));
  return { w, h: Math.round(w / ASPECT) };
}

export function layoutStage({ width, height, remote, focus = [], self = null, corner = "bottom-right", gap = 8 }) {
  const boxes = new Map();
  const stage = { x: 0, y: 0, w: Math.max(0, width), h: Math.max(0, height) };
  // A tall stage (a phone held upright) gets upright pictures: faces larger, the sides cropped.
  const aspect = stage.h > stage.w * 1.1 ? 3 / 4 : ASPECT;
  if (!remote.length) {
    // Alone: the own picture, below the line that says nobody else is here yet.
    if (self) grid([self], { x: 0, y: ALONE_TOP, w: stage.w, h: Math.max(0, stage.h - ALONE_TOP) }, gap, aspect, boxes);
    return { boxes, strip: "none" };
  }
  const main = focus.filter((id) => remote.includes(id)).slice(0, 2);
  const rest = remote.filter((id) => !main.includes(id));
  const place = (box, into) => (main.length ? focused(main, rest, box, gap, aspect, into)
    : grid(remote, box, gap, aspect, into));
  if (!self) {
    place(stage, boxes);
    return { boxes, strip: main.length && rest.length ? "bottom" : "none" };
  }
  const s = selfSize(stage.w, stage.h);
  const right = corner.endsWith("right");
  const bottom = corner.startsWith("bottom");
  const selfBox = { x: right ? stage.w - s.w : 0, y: bottom ? stage.h - s.h : 0, w: s.w, h: s.h, compact: true };
  // Three ways to keep the corner free; the one that leaves the remote pictures largest wins.
  const options = [
    stage, // the pictures' letterbox may leave the corner free already
    { x: right ? 0 : s.w + gap, y: 0, w: stage.w - s.w - gap, h: stage.h }, // a column beside it
    { x: 0, y: bottom ? 0 : s.h + gap, w: stage.w, h: stage.h - s.h - gap }, // a row above or below it
  ];
  let best = null;
  for (const box of options) {
    if (box.w <= 0 || box.h <= 0) continue;
    const candidate = new Map();
    place(box, candidate);
    if ([...candidate.values()].some((b) => overlaps(b, selfBox))) continue;
    const score = area(candidate, remote);
    if (!best || score > best.score) best = { score, candidate };
  }
  for (const [id, b] of best ? best.candidate : []) boxes.set(id, b);
  boxes.set(self, selfBox);
  return { boxes, strip: main.length && rest.length ? "bottom" : "none" };
}
