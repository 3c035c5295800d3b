// The execution page: while the workflow is not terminal, fetch the page again every two seconds and
// swap its content in (keeping open input/output panels); a click on a diagram node shows its task row.
(() => {
  "use strict";
  const INTERVAL_MS = 2000;
  const root = document.documentElement;

  function schedule() {
    window.setTimeout(poll, INTERVAL_MS);
  }

  async function poll() {
    let response;
    try {
      response = await fetch(window.location.href, { cache: "no-store", headers: { Accept: "text/html" } });
    } catch {
      schedule(); // the server is away for a moment: try again
      return;
    }
    if (!response.ok) {
      root.dataset.live = "off"; // removed, or the store is unavailable: keep what is shown
      return;
    }
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    const next = fresh.getElementById("execution");
    const current = document.getElementById("execution");
    if (next === null || current === null) {
      return;
    }
    for (const details of current.querySelectorAll("details[open][id]")) {
      const twin = next.querySelector(`details[id="${CSS.escape(details.id)}"]`);
      if (twin !== null) {
        twin.open = true;
      }
    }
    current.replaceWith(document.adoptNode(next));
    document.title = fresh.title;
    root.dataset.status = fresh.documentElement.dataset.status || "";
    root.dataset.live = fresh.documentElement.dataset.live || "off";
    if (root.dataset.live === "on") {
      schedule();
    }
  }

  document.addEventListener("click", (event) => {
    const node = event.target instanceof Element ? event.target.closest("svg g[data-ref]") : null;
    if (node === null) {
      return;
    }
    const ref = node.getAttribute("data-ref");
    const rows = [...document.querySelectorAll(".task-table tr[data-ref]")].filter(
      (row) => row.dataset.ref === ref || row.dataset.ref.startsWith(`${ref}__`),
    );
    const row = rows[rows.length - 1];
    if (row !== undefined) {
      row.scrollIntoView({ block: "center", behavior: "smooth" });
      row.classList.add("flash");
      window.setTimeout(() => row.classList.remove("flash"), 1500);
    }
  });

  if (root.dataset.live === "on") {
    schedule();
  }
})();
