"use strict";
// The add page: files and folders picked or dropped are listed, then handed to the app on this
// computer, which encrypts each one before anything leaves it. The browser gives no file's place
// on the disk, so the name and the time of last change of each go beside it, in order; anything
// the browser cannot read is listed and sent as left out, never dropped silently. On the vault
// page, files picked there go at once (a form marked data-at-once).
(() => {
  const form = document.getElementById("add");
  if (!form) {
    return;
  }
  const files = document.getElementById("files");
  const folder = document.getElementById("folder");
  const zone = document.getElementById("drop");
  const list = document.getElementById("chosen");
  const summary = document.getElementById("chosen-summary");
  const meta = document.getElementById("meta");
  const send = document.getElementById("send");
  const chosen = [];
  const leftOut = [];
  const seen = new Set();

  const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
  function size(n) {
    let value = n;
    for (const unit of units) {
      if (value < 1024 || unit === "TiB") {
        return unit === "bytes" ? `${value} ${unit}` : `${value.toFixed(1)} ${unit}`;
      }
      value /= 1024;
    }
    return `${n} bytes`;
  }

  function take(file, name) {
    const key = `${name}\u0000${file.size}\u0000${file.lastModified}`;
    if (!seen.has(key)) {
      seen.add(key);
      chosen.push({ file, name });
    }
  }

  function show() {
    const rows = chosen.map((c) => {
      const li = document.createElement("li");
      li.textContent = `${c.name} (${size(c.file.size)})`;
      return li;
    });
    for (const [name, why] of leftOut) {
      const li = document.createElement("li");
      li.className = "left-out";
      li.textContent = `${name}: not added, ${why}`;
      rows.push(li);
    }
    if (list) {
      list.replaceChildren(...rows);
    }
    const total = chosen.reduce((sum, c) => sum + c.file.size, 0);
    summary.textContent = chosen.length
      ? `${chosen.length} file(s), ${size(total)}, ready to encrypt and upload.`
      : "Nothing chosen yet.";
  }

  files.addEventListener("change", () => {
    for (const f of files.files) {
      take(f, f.name);
    }
    show();
    if (form.dataset.atOnce && chosen.length > 0) {
      form.requestSubmit();
    }
  });
  if (folder) {
    folder.addEventListener("change", () => {
      for (const f of folder.files) {
        take(f, f.webkitRelativePath || f.name);
      }
      show();
    });
  }

  function entriesOf(reader) {
    return new Promise((resolve, reject) => {
      const all = [];
      const next = () =>
        reader.readEntries((batch) => {
          if (batch.length === 0) {
            resolve(all);
          } else {
            all.push(...batch);
            next();
          }
        }, reject);
      next();
    });
  }

  async function walk(entry, path) {
    if (entry.isFile) {
      try {
        take(await new Promise((resolve, reject) => entry.file(resolve, reject)), path);
      } catch {
        leftOut.push([path, "the browser cannot read it"]);
      }
    } else if (entry.isDirectory) {
      let entries;
      try {
        entries = await entriesOf(entry.createReader());
      } catch {
        leftOut.push([path, "the browser cannot read the folder"]);
        return;
      }
      entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      for (const inner of entries) {
        await walk(inner, `${path}/${inner.name}`);
      }
    }
  }

  if (zone) {
    zone.addEventListener("dragover", (event) => {
      event.preventDefault();
      zone.classList.add("over");
    });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", async (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      // Read everything the drop holds before the first wait: it is gone after.
      const items = Array.from(event.dataTransfer.items || []).filter((i) => i.kind === "file");
      const entries = items.map((i) => (i.webkitGetAsEntry ? i.webkitGetAsEntry() : null));
      const plain = Array.from(event.dataTransfer.files || []);
      summary.textContent = "Reading what was dropped…";
      for (let k = 0; k < Math.max(entries.length, plain.length); k += 1) {
        if (entries[k]) {
          await walk(entries[k], entries[k].name);
        } else if (plain[k]) {
          take(plain[k], plain[k].name);
        }
      }
      show();
    });
  }

  form.addEventListener("submit", () => {
    if (chosen.length > 0) {
      const all = new DataTransfer();
      for (const c of chosen) {
        all.items.add(c.file);
      }
      files.files = all.files;
    }
    meta.value = JSON.stringify({
      files: chosen.map((c) => ({ name: c.name, modified: c.file.lastModified })),
      left_out: leftOut,
    });
    if (send) {
      send.disabled = true;
    }
    summary.textContent = "Handing the files to the app…";
  });
})();
