// The accounts screen: an account's switches change with
// PATCH /api/v1/accounts/{id} {"<switch>": true|false}.
(function () {
  "use strict";
  const C = window.Conveyor;
  document.addEventListener("change", async function (ev) {
    const box = ev.target.closest("input[data-switch]");
    if (!box) return;
    const body = {};
    body[box.dataset.switch] = box.checked;
    box.disabled = true;
    try {
      await C.api("PATCH", "/api/v1/accounts/" + box.dataset.accountId, body);
      C.toast(box.dataset.switch.replace(/_/g, " ") + (box.checked ? " on" : " off") + " for account #" + box.dataset.accountId + ".", "ok");
    } catch (e) {
      box.checked = !box.checked;
      C.toast(e.message, "bad");
    } finally {
      box.disabled = false;
      C.refresh("accounts");
    }
  });
})();
