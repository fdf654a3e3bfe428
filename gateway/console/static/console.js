// blobstore console: uploads with progress (XHR PUT of the raw file, streamed by the
// browser) and confirmation of destructive forms. No framework; htmx does the polling.
"use strict";

function consoleUpload(form) {
  const input = form.querySelector("input[type=file]");
  const bar = document.getElementById("upload-progress");
  const status = document.getElementById("upload-status");
  const files = Array.from(input.files || []);
  if (!files.length) { return; }
  const send = (i) => {
    if (i >= files.length) {
      status.textContent = "Uploaded " + files.length + " file(s).";
      bar.hidden = true;
      input.value = "";
      if (window.htmx) { window.htmx.trigger("#listing", "refresh"); }
      return;
    }
    const file = files[i];
    const key = (form.dataset.prefix || "") + file.name;
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", form.dataset.upload + "?key=" + encodeURIComponent(key));
    xhr.setRequestHeader("X-CSRF-Token", form.dataset.csrf);
    if (file.type) { xhr.setRequestHeader("Content-Type", file.type); }
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) { bar.value = e.loaded / e.total; }
    };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        send(i + 1);
      } else {
        bar.hidden = true;
        status.textContent = "Upload of " + file.name + " failed: " + xhr.status + " " + xhr.responseText;
      }
    };
    xhr.onerror = () => {
      bar.hidden = true;
      status.textContent = "Upload of " + file.name + " failed (network error).";
    };
    bar.hidden = false;
    bar.value = 0;
    status.textContent = "Uploading " + file.name + " (" + (i + 1) + "/" + files.length + ")…";
    xhr.send(file);
  };
  send(0);
}

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement)) { return; }
  if (form.dataset.upload) {
    event.preventDefault();
    consoleUpload(form);
    return;
  }
  if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
  }
});

// A poll that fails (gateway or cluster unavailable) leaves the last data on screen:
// say so in a banner until the next successful swap.
function consoleBanner(text) {
  let banner = document.getElementById("poll-error");
  if (!text) {
    if (banner) { banner.remove(); }
    return;
  }
  if (!banner) {
    banner = document.createElement("p");
    banner.id = "poll-error";
    banner.className = "alert poll-error";
    banner.setAttribute("role", "alert");
    document.querySelector("main").prepend(banner);
  }
  banner.textContent = text;
}

document.addEventListener("htmx:responseError", (e) => {
  consoleBanner("Live update failed (" + e.detail.xhr.status + "): showing the last data received.");
});
document.addEventListener("htmx:sendError", () => {
  consoleBanner("The gateway is not answering: showing the last data received.");
});
document.addEventListener("htmx:afterSwap", () => consoleBanner(""));
