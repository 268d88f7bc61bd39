// The upload's page while a job checks or loads the file: the rows read, every second,
// then the page again once the job has ended (it then shows the verdict).
(function () {
  "use strict";
  const config = JSON.parse(document.getElementById("upload-poll").textContent);
  const progress = document.getElementById("upload-progress");
  function poll() {
    fetch(config.url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
      .then((data) => {
        progress.textContent = data.progress;
        if (data.running) setTimeout(poll, 1000);
        else window.location.reload();
      })
      .catch(() => setTimeout(poll, 5000));
  }
  setTimeout(poll, 1000);
})();
