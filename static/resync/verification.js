// Verification runs follow their progress live (live.js's statesync:verification):
// a run's page and the runs list update Status and Progress without a reload, and
// the list its totals when the run ends.
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
    return row
      ? {
          status: row.querySelector("td.field-status"),
          progress: row.querySelector("td.field-progress"),
          to_resync: row.querySelector("td.field-to_resync"),
          not_allowed: row.querySelector("td.field-not_allowed"),
        }
      : {};
  }

  document.addEventListener("statesync:verification", (event) => {
    const run = event.detail;
    const found = cells(run.run);
    if (found.status) found.status.textContent = run.status_display;
    if (found.progress) found.progress.textContent = run.progress;
    // An ended run's totals come with its last message.
    for (const total of ["to_resync", "not_allowed"]) {
      if (found[total] && run[total] !== undefined) found[total].textContent = run[total];
    }
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
