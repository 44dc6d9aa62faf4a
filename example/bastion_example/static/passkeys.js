// Passkeys on /sign-in and /account: the browser's half of the two WebAuthn ceremonies.
// The server hands out the options (the `publicKey` member, binary fields base64url) and
// takes the browser's answer in the standard JSON form (PublicKeyCredential.toJSON());
// this file only carries them between /api/auth/passkeys/* and navigator.credentials.
// Served from this origin: the CSP allows no inline script.
"use strict";
(() => {
  const supported = () => typeof window.PublicKeyCredential === "function";

  const toBytes = (text) => {
    const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
    return Uint8Array.from(binary, (c) => c.charCodeAt(0));
  };
  const toText = (buffer) => {
    const bytes = new Uint8Array(buffer);
    let binary = "";
    for (const byte of bytes) binary += String.fromCharCode(byte);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  };
  const descriptors = (list) => (list || []).map((item) => ({ ...item, id: toBytes(item.id) }));

  // JSON options to what navigator.credentials takes: the browser's own parser when it has one.
  const creationOptions = (json) =>
    PublicKeyCredential.parseCreationOptionsFromJSON
      ? PublicKeyCredential.parseCreationOptionsFromJSON(json)
      : {
          ...json,
          challenge: toBytes(json.challenge),
          user: { ...json.user, id: toBytes(json.user.id) },
          excludeCredentials: descriptors(json.excludeCredentials),
        };
  const requestOptions = (json) =>
    PublicKeyCredential.parseRequestOptionsFromJSON
      ? PublicKeyCredential.parseRequestOptionsFromJSON(json)
      : { ...json, challenge: toBytes(json.challenge), allowCredentials: descriptors(json.allowCredentials) };

  // The credential in its JSON form: toJSON() where the browser has it, built by hand otherwise.
  const asJSON = (credential) => {
    if (typeof credential.toJSON === "function") return credential.toJSON();
    const response = credential.response;
    const json = {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      clientExtensionResults: credential.getClientExtensionResults(),
      response: { clientDataJSON: toText(response.clientDataJSON) },
    };
    if (response.attestationObject) {
      json.response.attestationObject = toText(response.attestationObject);
      json.response.transports = response.getTransports ? response.getTransports() : [];
    } else {
      json.response.authenticatorData = toText(response.authenticatorData);
      json.response.signature = toText(response.signature);
      json.response.userHandle = response.userHandle ? toText(response.userHandle) : null;
    }
    return json;
  };

  const post = async (path, body) => {
    const response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body || {}),
      cache: "no-store",
    });
    let data = {};
    try {
      data = await response.json();
    } catch (error) {
      data = {};
    }
    if (!response.ok) {
      const failure = new Error(data.error || `refused (${response.status})`);
      failure.reason = data.reason || "";
      throw failure;
    }
    return data;
  };

  const show = (element, text, reason) => {
    if (!element) return;
    element.hidden = false;
    element.textContent = text;
    element.dataset.reason = reason || "";
  };

  // "Sign in with a passkey": without a password, or as the second factor of one (the pending
  // cookie, if any, goes along by itself and narrows the options to that account's passkeys).
  const signIn = async (button) => {
    const error = document.getElementById("passkey-error");
    if (error) error.hidden = true;
    button.disabled = true;
    try {
      const options = await post("/api/auth/passkeys/sign-in/options");
      const credential = await navigator.credentials.get({ publicKey: requestOptions(options) });
      await post("/api/auth/passkeys/sign-in", asJSON(credential));
      window.location.assign(button.dataset.next || "/account");
    } catch (failure) {
      show(error, `Passkey sign-in failed: ${failure.message}`, failure.reason);
      button.disabled = false;
    }
  };

  // "Add a passkey" on /account: the password again, the browser's dialog, then the new row.
  const register = async (form) => {
    const error = document.getElementById("passkey-add-error");
    if (error) error.hidden = true;
    const password = form.querySelector("[name=password]");
    const name = form.querySelector("[name=name]");
    try {
      const options = await post("/api/auth/passkeys/register/options", { password: password.value });
      const credential = await navigator.credentials.create({ publicKey: creationOptions(options) });
      const body = asJSON(credential);
      if (name && name.value.trim()) body.name = name.value.trim();
      await post("/api/auth/passkeys/register", body);
      window.location.assign("/account?passkey=added");
    } catch (failure) {
      password.value = "";
      show(error, `The passkey was not added: ${failure.message}`, failure.reason);
    }
  };

  document.addEventListener("DOMContentLoaded", () => {
    const button = document.getElementById("passkey-sign-in");
    const form = document.getElementById("passkey-add");
    // Hidden until this script runs in a browser that has WebAuthn: without them, nothing
    // offers what cannot work (and the password field never lands in a URL).
    if (!supported()) return;
    for (const element of [button, form]) if (element) element.hidden = false;
    if (button) button.addEventListener("click", () => signIn(button));
    if (form) {
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        register(form);
      });
    }
  });
})();
