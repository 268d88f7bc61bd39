// One websocket per admin page: alert counter in the header, and step, request
// and verification events re-dispatched as DOM events for whichever page is open.
(function () {
  "use strict";
  const counter = document.getElementById("alert-count");
  if (!counter) return;
  let delay = 1000;
  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + window.location.host + "/ws/live/");
    socket.onopen = () => {
      delay = 1000;
      document.body.dataset.live = "open";
    };
    socket.onmessage = (message) => {
      const event = JSON.parse(message.data);
      if (event.type === "alert.new" || event.type === "alert.count") {
        counter.textContent = event.unread;
        counter.dataset.unread = event.unread;
      } else if (event.type === "step.status") {
        document.dispatchEvent(new CustomEvent("statesync:step", { detail: event }));
      } else if (event.type === "request.finished") {
        document.dispatchEvent(new CustomEvent("statesync:finished", { detail: event }));
      } else if (event.type === "verification.progress") {
        document.dispatchEvent(new CustomEvent("statesync:verification", { detail: event }));
      }
    };
    socket.onclose = () => {
      document.body.dataset.live = "closed";
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    };
  }
  connect();
})();
