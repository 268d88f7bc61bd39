// Verification runs follow their progress live (live.js's statesync:verification):
// a run's page and the runs list update Status and Progress without a reload.
(function () {
  "use strict";
  const ENDED = ["finished", "failed"];

  function cells(run) {
    const page = document.getElementById("verification-run"); // the run's own page
    if (page && JSON.parse(page.textContent) === run) {
      return {
        page: true,
        status: document.querySelector(".field-status .readonly"),
        progress: document.querySelector(".field-progress .readonly"),
      };
    }
    const pick = document.querySelector('#result_list input.action-select[value="' + run + '"]');
    const row = pick && pick.closest("tr");
    return row ? { status: row.querySelector("td.field-status"), progress: row.querySelector("td.field-progress") } : {};
  }

  document.addEventListener("statesync:verification", (event) => {
    const run = event.detail;
    const found = cells(run.run);
    if (found.status) found.status.textContent = run.status_display;
    if (found.progress) found.progress.textContent = run.progress;
    if (found.page && ENDED.includes(run.status) && !document.getElementById("verification-ended")) {
      // Its results and the resync button are the server's to draw: offer them, do not jump.
      const note = document.createElement("p");
      note.id = "verification-ended";
      note.className = "success";
      note.append("This verification has " + run.status + ". ");
      const link = document.createElement("a");
      link.href = window.location.pathname;
      link.textContent = "Show its results";
      note.append(link);
      found.status.after(note);
    }
  });
})();
