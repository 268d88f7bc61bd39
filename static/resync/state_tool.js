// The state tool's select-all boxes (issue 14, item 10): every district at once, every
// object of the state's edition at once, and Clear. tool.js reads the same controls
// when it asks before sending, so what is ticked here is what it names.
(function () {
  "use strict";
  const all = document.getElementById("all-districts");
  const boxes = () => Array.from(document.querySelectorAll('#districts input[name="districts"]'));
  if (all) {
    all.addEventListener("change", () => boxes().forEach((b) => (b.checked = all.checked)));
    boxes().forEach((b) =>
      b.addEventListener("change", () => {
        const ticked = boxes().filter((c) => c.checked).length;
        all.checked = ticked === boxes().length;
        all.indeterminate = ticked > 0 && ticked < boxes().length;
      })
    );
  }
  const objects = document.getElementById("state-objects");
  const pick = (on) => Array.from(objects.options).forEach((o) => (o.selected = on));
  document.getElementById("all-objects").addEventListener("click", () => pick(true));
  document.getElementById("no-objects").addEventListener("click", () => pick(false));
})();
