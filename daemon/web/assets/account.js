// Who is signed in, shown in the top bar; signing out, and being signed out
// by the daemon.

import { $, show } from "./dom.js";
import { call, codeIs, storeToken } from "./api.js";
import { stopEvents } from "./events.js";
import { setStatus, showAlert, work } from "./feedback.js";
import { state } from "./state.js";

export function renderUser() {
  show($("nav"), Boolean(state.user));
  show($("who"), Boolean(state.user));
  $("who-email").textContent = state.user ? state.user.email : "";
}

export function signedOut(message) {
  if (!state.user) return;
  stopEvents();
  state.user = null;
  renderUser();
  if (location.hash !== "#/signin") {
    state.wanted = location.hash;
    location.hash = "#/signin";
  }
  if (message) showAlert(message);
}

export async function signOut() {
  await work("Signing out", async () => {
    try {
      await call("Logout");
    } catch (err) {
      if (!codeIs(err, "unauthenticated")) throw err;
    }
    stopEvents();
    storeToken("");
    state.user = null;
    state.wanted = null;
    renderUser();
    location.hash = "#/signin";
    setStatus("Signed out.");
  });
}
