// Opt-in alerts for the desk (issue 14): a sound and a desktop notification (the
// Notification API) for new tickets and new messages in "Mine". Both start off; the browser
// is asked for permission only when the teammate turns desktop alerts on (a click), and the
// choice is remembered in this browser (localStorage), for every tenant and teammate.

import { h, toast } from "./ui.js";

const KEY = "handoff:desk:alerts";

function load() {
  try {
    const saved = JSON.parse(localStorage.getItem(KEY) || "{}");
    return { sound: saved.sound === true, desktop: saved.desktop === true };
  } catch (e) {
    return { sound: false, desktop: false };
  }
}

// One for the page's life (browsers limit how many a page may open); made on a click where
// possible: browsers only let a page play sound after a gesture.
let audio = null;

export function alerts() {
  const settings = load();
  const save = () => {
    try {
      localStorage.setItem(KEY, JSON.stringify(settings));
    } catch (e) {
      /* not remembered; still on for this page */
    }
  };
  const toggle = (id, label, name, turnOn) => {
    const button = h("button", { type: "button", class: "toggle", id, "aria-pressed": String(settings[name]) }, label);
    button.addEventListener("click", async () => {
      const on = !settings[name];
      if (on && !(await turnOn())) return;
      settings[name] = on;
      button.setAttribute("aria-pressed", String(on));
      save();
    });
    return button;
  };
  const sound = toggle("notify-sound", "Sound", "sound", async () => {
    audio = audio || new AudioContext();
    await audio.resume().catch(() => null);
    return true;
  });
  const desktop = toggle("notify-desktop", "Desktop alerts", "desktop", async () => {
    if (!("Notification" in window)) {
      toast("This browser cannot show desktop notifications.", "error");
      return false;
    }
    const permission = Notification.permission === "granted" ? "granted" : await Notification.requestPermission();
    if (permission !== "granted") {
      toast("The browser blocks notifications for this page: allow them in its site settings, then try again.", "error");
      return false;
    }
    return true;
  });

  function beep() {
    audio = audio || new AudioContext(); // after a reload: plays once the page had a click
    const tone = audio.createOscillator();
    const gain = audio.createGain();
    tone.frequency.value = 880;
    gain.gain.setValueAtTime(0.08, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.0001, audio.currentTime + 0.25);
    tone.connect(gain).connect(audio.destination);
    tone.start();
    tone.stop(audio.currentTime + 0.25);
  }

  return {
    controls: h("div", { class: "alert-toggles", role: "group", "aria-labelledby": "alerts-label" },
      h("span", { class: "muted small", id: "alerts-label" }, "Alerts"), sound, desktop),
    // Something for the teammate: a sound and a notification, as they chose.
    tell(title, body, tag) {
      if (settings.sound) beep();
      if (settings.desktop && "Notification" in window && Notification.permission === "granted") {
        const note = new Notification(title, { body, tag });
        note.onclick = () => {
          window.focus();
          location.hash = `#/desk?c=${encodeURIComponent(tag)}`;
        };
      }
    },
  };
}
