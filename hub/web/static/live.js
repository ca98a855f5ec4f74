/* The live pages' connection state: "实时" while the SSE stream is open, "连接中断，正在重连" while
   the browser reconnects (the hub restarted or the network dropped). No other script runs here. */
(function () {
  function mark(online) {
    document.body.classList.toggle("live-offline", !online);
    document.querySelectorAll(".live-status").forEach(function (el) {
      el.textContent = online ? (document.body.classList.contains("display") ? "" : "实时")
                              : "连接中断，正在重连…";
    });
  }
  document.addEventListener("htmx:sseOpen", function () { mark(true); });
  document.addEventListener("htmx:sseError", function () { mark(false); });
  document.addEventListener("htmx:sseMessage", function () { mark(true); });
})();
