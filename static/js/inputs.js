/**
 * Where images come from: the sample gallery, a file picker, drag and drop, paste, the
 * webcam and a drawing pad. Each hands an image Blob to onImage(blob, info); none of them
 * knows anything about the network.
 */

const CAMERA_MESSAGES = {
  NotAllowedError: "The camera was refused. Allow it in the browser's site settings, or use another input.",
  SecurityError: "The camera was refused. Allow it in the browser's site settings, or use another input.",
  NotFoundError: "No camera was found on this computer.",
  NotReadableError: "The camera is in use by another program.",
  OverconstrainedError: "The camera cannot take pictures in a usable size.",
};
const NO_CAMERA =
  "This browser offers no camera on this page (cameras need https or localhost). Use another input.";

function fileFromTransfer(transfer) {
  if (!transfer) return null;
  if (transfer.files?.length) return transfer.files[0];
  for (const item of transfer.items || []) {
    if (item.kind === "file") return item.getAsFile();
  }
  return null;
}

export const isTyping = (target) =>
  target instanceof HTMLElement && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));

function setupTabs(root) {
  const tabs = [...root.querySelectorAll('[role="tab"]')];
  const select = (tab, focus = false) => {
    for (const other of tabs) {
      const selected = other === tab;
      other.setAttribute("aria-selected", String(selected));
      other.tabIndex = selected ? 0 : -1;
      document.getElementById(other.getAttribute("aria-controls")).hidden = !selected;
    }
    if (focus) tab.focus();
    root.dispatchEvent(new CustomEvent("tabchange", { detail: tab.id.replace("tab-", "") }));
  };
  for (const tab of tabs) {
    tab.addEventListener("click", () => select(tab));
    tab.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      event.preventDefault();
      event.stopPropagation();
      select(tabs[(tabs.indexOf(tab) + step + tabs.length) % tabs.length], true);
    });
  }
  root.hidden = false;
  return (name) => select(document.getElementById(`tab-${name}`));
}

function setupCamera(onImage, onError) {
  const video = document.getElementById("camera-video");
  const message = document.getElementById("camera-message");
  const [start, capture, stop] = ["camera-start", "camera-capture", "camera-stop"].map((id) =>
    document.getElementById(id),
  );
  let stream = null;
  const setRunning = (running) => {
    video.hidden = !running;
    start.disabled = running;
    capture.disabled = stop.disabled = !running;
  };
  const halt = () => {
    stream?.getTracks().forEach((track) => track.stop());
    stream = null;
    video.srcObject = null;
    setRunning(false);
  };
  start.addEventListener("click", async () => {
    if (!navigator.mediaDevices?.getUserMedia) {
      message.textContent = NO_CAMERA;
      message.classList.add("warning");
      return;
    }
    message.textContent = "Asking for the camera…";
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
      video.srcObject = stream;
      message.textContent = "Point the camera at something, then Capture.";
      message.classList.remove("warning");
      setRunning(true);
    } catch (error) {
      message.textContent = CAMERA_MESSAGES[error.name] || `The camera could not start: ${error.message}`;
      message.classList.add("warning");
      halt();
    }
  });
  capture.addEventListener("click", () => {
    const side = Math.min(video.videoWidth, video.videoHeight);
    if (!side) return onError("The camera has not sent a picture yet; try again in a moment.");
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = side;
    canvas.getContext("2d").drawImage(
      video, (video.videoWidth - side) / 2, (video.videoHeight - side) / 2, side, side, 0, 0, side, side,
    );
    canvas.toBlob((blob) => onImage(new File([blob], "camera.png", { type: "image/png" }), { source: "camera" }));
  });
  stop.addEventListener("click", halt);
  return halt;
}

function setupPad(onImage, onError) {
  const pad = document.getElementById("draw-pad");
  const ctx = pad.getContext("2d");
  let inked = false;
  let last = null;
  const clear = () => {
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, pad.width, pad.height);
    inked = false;
  };
  const point = (event) => {
    const rect = pad.getBoundingClientRect();
    return [((event.clientX - rect.left) * pad.width) / rect.width, ((event.clientY - rect.top) * pad.height) / rect.height];
  };
  const stroke = (to) => {
    ctx.strokeStyle = "#fff";
    ctx.fillStyle = "#fff";
    ctx.lineWidth = pad.width / 13;
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(...(last || to));
    ctx.lineTo(...to);
    ctx.stroke();
    last = to;
    inked = true;
  };
  pad.addEventListener("pointerdown", (event) => {
    pad.setPointerCapture(event.pointerId);
    last = null;
    stroke(point(event));
  });
  pad.addEventListener("pointermove", (event) => {
    if (last) stroke(point(event));
  });
  const classify = () => {
    if (!inked) return onError("Draw a digit on the pad first.");
    pad.toBlob((blob) => onImage(new File([blob], "drawing.png", { type: "image/png" }), { source: "drawing" }));
  };
  const lift = () => {
    // Each finished stroke runs the network, so the prediction follows the pen.
    if (last) classify();
    last = null;
  };
  pad.addEventListener("pointerup", lift);
  pad.addEventListener("pointercancel", () => {
    last = null;
  });
  document.getElementById("draw-clear").addEventListener("click", clear);
  document.getElementById("draw-classify").addEventListener("click", classify);
  clear();
}

/** The gallery for one model: a button per sample, showing its label. */
export function renderGallery(samples, model, selectedId, onPick) {
  const gallery = document.getElementById("sample-gallery");
  gallery.replaceChildren(
    ...samples
      .filter((sample) => sample.model === model)
      .map((sample) => {
        const item = document.createElement("li");
        const button = document.createElement("button");
        button.type = "button";
        button.className = "sample";
        button.dataset.sample = sample.id;
        button.setAttribute("aria-pressed", String(sample.id === selectedId));
        button.title = `${sample.label} (${sample.source})`;
        const img = document.createElement("img");
        img.src = sample.url;
        img.alt = sample.label;
        img.className = "pixelated";
        img.width = img.height = 44;
        button.append(img);
        button.addEventListener("click", () => onPick(sample));
        item.append(button);
        return item;
      }),
  );
}

export async function sampleBlob(sample) {
  const response = await fetch(sample.url);
  if (!response.ok) throw new Error(`The sample ${sample.id} could not be loaded.`);
  const blob = await response.blob();
  return new File([blob], sample.file.split("/").pop(), { type: blob.type });
}

/**
 * Wire every input. onImage(file, info) receives a File; onError(sentence) a problem.
 * Returns {selectTab(name)}.
 */
export function setupInputs({ onImage, onError }) {
  const selectTab = setupTabs(document.querySelector(".tabs"));
  const fileInput = document.getElementById("file-input");
  fileInput.addEventListener("change", () => {
    if (fileInput.files.length) onImage(fileInput.files[0], { source: "file" });
    fileInput.value = "";
  });
  document.getElementById("upload-form").addEventListener("submit", (event) => event.preventDefault());

  const overlay = document.getElementById("drop-overlay");
  let dragDepth = 0;
  const hasFiles = (event) => [...(event.dataTransfer?.types || [])].includes("Files");
  document.addEventListener("dragenter", (event) => {
    if (!hasFiles(event)) return;
    dragDepth++;
    overlay.hidden = false;
  });
  document.addEventListener("dragleave", () => {
    dragDepth = Math.max(0, dragDepth - 1);
    if (!dragDepth) overlay.hidden = true;
  });
  document.addEventListener("dragover", (event) => {
    if (hasFiles(event)) event.preventDefault();
  });
  document.addEventListener("drop", (event) => {
    event.preventDefault();
    dragDepth = 0;
    overlay.hidden = true;
    const file = fileFromTransfer(event.dataTransfer);
    if (file) onImage(file, { source: "drop" });
  });
  document.addEventListener("paste", (event) => {
    if (isTyping(event.target)) return;
    const file = fileFromTransfer(event.clipboardData);
    if (!file) return onError("The clipboard holds no image: copy an image, then paste it here.");
    event.preventDefault();
    onImage(file, { source: "paste" });
  });

  const stopCamera = setupCamera(onImage, onError);
  setupPad(onImage, onError);
  document.querySelector(".tabs").addEventListener("tabchange", (event) => {
    if (event.detail !== "camera") stopCamera();
  });
  return { selectTab };
}
