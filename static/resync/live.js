// One websocket per admin page: alert counter in the header, and step, request
// and verification events re-dispatched as DOM events for whichever page is open.
// Each time the socket opens (the first time too: the page was drawn before it) a
// statesync:resync event asks the page to fetch what it shows now, since pushes sent
// while no socket listened are lost.
(function () {
  "use strict";
  const counter = document.getElementById("alert-count");
  if (!counter) return;
  let delay = 1000;
  let opened = 0;
  const EVENTS = {
    "step.status": "statesync:step",
    "request.finished": "statesync:finished",
    "verification.progress": "statesync:verification",
  };
  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + window.location.host + "/ws/live/");
    socket.onopen = () => {
      delay = 1000;
      opened += 1;
      document.body.dataset.live = "open";
      document.body.dataset.liveOpened = String(opened);
      document.dispatchEvent(new CustomEvent("statesync:resync", { detail: { reconnect: opened > 1 } }));
    };
    socket.onmessage = (message) => {
      let event;
      try {
        event = JSON.parse(message.data);
      } catch (e) {
        return; // the server only sends JSON; anything else is not ours to act on
      }
      if (event.type === "alert.new" || event.type === "alert.count") {
        counter.textContent = event.unread;
        counter.dataset.unread = event.unread;
      } else if (event.type === "resync") {
        // The user's rights changed: what the page shows may need fetching again.
        document.dispatchEvent(new CustomEvent("statesync:resync", { detail: { reconnect: false } }));
      } else if (EVENTS[event.type]) {
        document.dispatchEvent(new CustomEvent(EVENTS[event.type], { detail: event }));
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
