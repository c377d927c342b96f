/*
 * Switchboard chat widget: the one script a shop adds to its pages.
 *
 *   <script src="https://chat.example.com/widget.js"
 *           data-server="https://chat.example.com"
 *           data-customer-token="..." async></script>
 *
 * It reads its data attributes and loads the widget's ES modules from the
 * same server; see docs/widget.md for every attribute.
 */
(function () {
  "use strict";

  var script =
    document.currentScript || document.querySelector('script[src*="widget.js"]');
  if (!script || window.__switchboardWidget) return;
  window.__switchboardWidget = true;

  var data = script.dataset;
  var server = data.server || new URL(script.src, location.href).origin;
  server = server.replace(/\/+$/, "") + "/";

  function start() {
    import(new URL("static/js/widget/main.js", server).href)
      .then(function (widget) {
        widget.mount({
          server: server,
          customerToken: data.customerToken,
          prechat: data.prechat,
          cartKey: data.cartKey,
          title: data.title,
          buttonLabel: data.buttonLabel,
        });
      })
      .catch(function (error) {
        console.error("Switchboard widget failed to load:", error);
      });
  }

  if (document.body) start();
  else document.addEventListener("DOMContentLoaded", start);
})();
