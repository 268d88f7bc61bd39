// Verification runs follow their progress live (live.js's statesync:verification):
// a run's page and the runs list update Status and Progress without a reload, and
// the list its totals when the run ends.
(function () {
  "use strict";
  const ENDED = ["finished", "failed"];
  const ENDED_DISPLAY = ["Finished", "Failed"]; // as the server writes them (Status choices)

  // The cells of `run` in `doc` (this page, or a copy of it fetched anew).
  function cells(run, doc) {
    const page = doc.getElementById("verification-run"); // the run's own page
    if (page && JSON.parse(page.textContent) === run) {
      return {
        page: true,
        status: doc.querySelector(".field-status .readonly"),
        progress: doc.querySelector(".field-progress .readonly"),
      };
    }
    const pick = doc.querySelector('#result_list input.action-select[value="' + run + '"]');
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

  // The runs this page shows: its own run, or the list's rows.
  function shownRuns() {
    const page = document.getElementById("verification-run");
    if (page) return [JSON.parse(page.textContent)];
    if (!document.body.classList.contains("model-verificationrun")) return [];
    return Array.from(document.querySelectorAll("#result_list input.action-select")).map((c) => Number(c.value));
  }

  // The socket (re)opened: pushes sent while none listened are lost, so read this page
  // again (the server draws it, with its rights) and take each run's cells from it.
  document.addEventListener("statesync:resync", async () => {
    const runs = shownRuns().filter((run) => {
      const shown = cells(run, document).status;
      return shown && !ENDED_DISPLAY.includes(shown.textContent.trim());
    });
    if (runs.length === 0) return; // nothing shown can still change
    const response = await fetch(window.location.href, { credentials: "same-origin" });
    if (!response.ok) return;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const run of runs) {
      const now = cells(run, fresh);
      if (!now.status) continue;
      const status = now.status.textContent.trim();
      show({
        run: run,
        status: ENDED[ENDED_DISPLAY.indexOf(status)] || "",
        status_display: status,
        progress: now.progress ? now.progress.textContent.trim() : undefined,
        to_resync: now.to_resync ? now.to_resync.textContent.trim() : undefined,
        not_allowed: now.not_allowed ? now.not_allowed.textContent.trim() : undefined,
      });
    }
  });

  document.addEventListener("statesync:verification", (event) => show(event.detail));

  function show(run) {
    const found = cells(run.run, document);
    if (found.status) found.status.textContent = run.status_display;
    if (found.progress && run.progress !== undefined) found.progress.textContent = run.progress;
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
  }
})();
