// The Resync State Data tool: select all, plan preview, confirm, live status.
(function () {
  "use strict";
  const root = document.getElementById("resync-tool");
  if (!root) return;
  const picks = () => Array.from(root.querySelectorAll("input.pick:not([disabled])"));
  const selectAll = document.getElementById("select-all");
  const checkDeps = document.getElementById("check-dependencies");
  const full = document.getElementById("full");
  const plan = document.getElementById("plan");

  function chosen() {
    return picks().filter((c) => c.checked).map((c) => c.value);
  }

  async function preview() {
    const all = selectAll.checked;
    full.value = all ? "1" : "0";
    const names = chosen();
    if (!all && names.length === 0) {
      plan.textContent = "";
      return;
    }
    const q = new URLSearchParams({ year: root.dataset.year, full: all ? "1" : "0", check_dependencies: checkDeps.checked ? "1" : "0" });
    names.forEach((n) => q.append("objects", n));
    const response = await fetch(root.dataset.planUrl + "?" + q.toString(), { credentials: "same-origin" });
    const body = await response.json();
    plan.textContent = body.error ? body.error : "Will run, in this order: " + body.order.join(" → ");
    plan.className = body.error ? "errornote" : "";
  }

  selectAll.addEventListener("change", () => {
    picks().forEach((c) => (c.checked = selectAll.checked));
    preview();
  });
  checkDeps.addEventListener("change", preview);
  picks().forEach((c) => c.addEventListener("change", () => {
    if (!c.checked) selectAll.checked = false;
    preview();
  }));
  const form = document.getElementById("send-form");
  const note = document.getElementById("send-result");
  form.addEventListener("submit", async (event) => {
    // Send without leaving the page: the rows then turn Gray and Green live.
    event.preventDefault();
    full.value = selectAll.checked ? "1" : "0";
    const what = selectAll.checked ? "a full resync" : chosen().length + " object(s)";
    if (!window.confirm("Send " + what + " to the state?")) return;
    const response = await fetch(window.location.pathname, {
      method: "POST",
      body: new FormData(form),
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    });
    const body = await response.json();
    note.textContent = body.error || body.message;
    note.className = body.error ? "errornote" : "success";
  });

  document.addEventListener("statesync:step", (event) => {
    const step = event.detail;
    if (String(step.district) !== root.dataset.district) return;
    const row = root.querySelector('tr[data-object="' + step.object + '"]');
    if (!row) return;
    row.querySelector(".last").textContent = step.started_at ? new Date(step.started_at).toLocaleString() : "";
    row.querySelector(".results").innerHTML =
      'Processed: <span class="processed"></span> Errors: <span class="errors"></span>';
    row.querySelector(".processed").textContent = step.processed;
    row.querySelector(".errors").textContent = step.errors;
    row.querySelector(".results").title = step.processed - step.errors + " records sent";
    row.querySelector(".status").innerHTML = '<span class="status-dot"></span>';
    const dot = row.querySelector(".status-dot");
    dot.textContent = "●";
    dot.className = "status-dot status-" + step.colour;
    dot.title = step.colour;
  });
})();
