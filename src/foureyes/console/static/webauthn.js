// Security keys and passkeys in the foureyes console (no libraries, no build step).
//
// - On the Security keys page (form[data-webauthn-enrol]): asks the server for creation options,
//   lets the browser create a credential, then asks for options by which a key the person
//   already has (one that counts) vouches for the new one and gets that key's assertion; sends
//   both back. Without such a key the server asks security to approve the new one instead.
// - On a review form that needs step-up (form[data-step-up="1"]): intercepts the submission,
//   asks the server for request options for this request and verdict (the server computes the
//   challenge from the request's digest), gets an assertion from the key, puts it as JSON into
//   the hidden `step_up` field and submits the form. The server verifies it.
// - On a demo server only (<meta name="foureyes-demo">, which `serve --demo` alone renders), a
//   review form that needs step-up also gets a clearly labelled box: ticked, the demo key the
//   server holds for the signed-in person signs the review instead of a security key
//   (POST /console/demo/step-up, mounted on demo servers alone; foureyes.core.demo).
// - A form may name its own endpoints (data-step-up-options-url, data-demo-step-up-url): a
//   batch's review card does, so that the challenge is computed from the batch's digest (its
//   Merkle root) instead of a request's; data-request-id is then the batch's id.
(function () {
  "use strict";

  function toBase64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var text = "";
    for (var i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i]);
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function fromBase64url(value) {
    var base64 = value.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) base64 += "=";
    var text = atob(base64);
    var bytes = new Uint8Array(text.length);
    for (var i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    return bytes.buffer;
  }

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  // As postJSON, but a 409 (nothing to do that way) answers null instead of failing.
  async function postJSONUnlessConflict(url, body) {
    try {
      return await postJSON(url, body);
    } catch (error) {
      if (error && error.status === 409) return null;
      throw error;
    }
  }

  async function postJSON(url, body) {
    var response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "X-CSRF-Token": csrfToken(),
      },
      body: JSON.stringify(body),
    });
    var data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (!response.ok) {
      var detail = data && data.detail ? data.detail : "the server answered " + response.status;
      var failure = new Error(detail);
      failure.status = response.status;
      throw failure;
    }
    return data;
  }

  function descriptors(list) {
    return (list || []).map(function (c) {
      var d = { type: c.type, id: fromBase64url(c.id) };
      if (c.transports) d.transports = c.transports;
      return d;
    });
  }

  function creationOptions(o) {
    var options = Object.assign({}, o);
    options.challenge = fromBase64url(o.challenge);
    options.user = Object.assign({}, o.user, { id: fromBase64url(o.user.id) });
    options.excludeCredentials = descriptors(o.excludeCredentials);
    return options;
  }

  function requestOptions(o) {
    var options = Object.assign({}, o);
    options.challenge = fromBase64url(o.challenge);
    options.allowCredentials = descriptors(o.allowCredentials);
    return options;
  }

  // A PublicKeyCredential as JSON, around its `response` (an attestation or an assertion).
  function credentialJSON(credential, response) {
    return {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      response: response,
      clientExtensionResults: credential.getClientExtensionResults(),
      authenticatorAttachment: credential.authenticatorAttachment || null,
    };
  }

  function registrationJSON(credential) {
    var r = credential.response;
    return credentialJSON(credential, {
      clientDataJSON: toBase64url(r.clientDataJSON),
      attestationObject: toBase64url(r.attestationObject),
      transports: typeof r.getTransports === "function" ? r.getTransports() : [],
    });
  }

  function assertionJSON(credential) {
    var r = credential.response;
    return credentialJSON(credential, {
      clientDataJSON: toBase64url(r.clientDataJSON),
      authenticatorData: toBase64url(r.authenticatorData),
      signature: toBase64url(r.signature),
      userHandle: r.userHandle ? toBase64url(r.userHandle) : null,
    });
  }

  function supported() {
    return typeof window.PublicKeyCredential !== "undefined" && !!navigator.credentials;
  }

  function why(error, rpId) {
    if (error && error.name === "SecurityError") {
      return "Security keys are bound to " + rpId + ", and this page is not on it: " +
        "open the console at its address on " + rpId + ".";
    }
    if (error && error.name === "NotAllowedError") {
      return "The security key did not answer (cancelled or timed out). Try again.";
    }
    if (error && error.name === "InvalidStateError") {
      return "This security key is already added.";
    }
    return (error && error.message) || String(error);
  }

  // --- enrolment ------------------------------------------------------------------------------

  function statusBox(form) {
    var box = document.getElementById("webauthn-status");
    if (!box) {
      box = form.querySelector(".webauthn-status");
    }
    if (!box) {
      box = document.createElement("p");
      box.className = "error webauthn-status";
      box.setAttribute("role", "alert");
      form.insertBefore(box, form.firstChild);
    }
    return box;
  }

  function show(form, message) {
    var box = statusBox(form);
    box.textContent = message;
    box.hidden = !message;
  }

  function setUpEnrolment(form) {
    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      var button = form.querySelector('button[type="submit"]');
      if (!supported()) {
        show(form, "This browser cannot use security keys.");
        return;
      }
      show(form, "");
      if (button) button.disabled = true;
      var rpId = "";
      try {
        var options = await postJSON("/console/webauthn/registration/options", {});
        rpId = options.rp.id;
        var credential = await navigator.credentials.create({ publicKey: creationOptions(options) });
        var body = { name: form.elements.name.value, credential: registrationJSON(credential) };
        var proof = await postJSONUnlessConflict(
          "/console/webauthn/registration/proof-options", body);
        if (proof) {
          show(form, "Now confirm with a security key you already have.");
          var vouching = await navigator.credentials.get({ publicKey: requestOptions(proof) });
          body.proof = { method: "webauthn", credential: assertionJSON(vouching) };
        }
        var done = await postJSON("/console/webauthn/registration", body);
        window.location.assign(done.next);
      } catch (error) {
        show(form, why(error, rpId));
      } finally {
        if (button) button.disabled = false;
      }
    });
  }

  // --- step-up for a review ------------------------------------------------------------------

  function demoServer() {
    return !!document.querySelector('meta[name="foureyes-demo"][content="1"]');
  }

  var demoBoxes = 0;

  // The demo's box on a review form (demo servers only): unticked, unless this browser cannot
  // use security keys at all.
  function addDemoBox(form) {
    demoBoxes += 1;
    var id = "demo-step-up-" + demoBoxes;
    var box = document.createElement("div");
    box.className = "demo-step-up";
    box.setAttribute("data-demo-step-up", "1");
    var input = document.createElement("input");
    input.type = "checkbox";
    input.id = id;
    input.checked = !supported();
    var label = document.createElement("label");
    label.htmlFor = id;
    label.textContent = " Demo only: no security key or passkey here? Confirm with the demo key " +
      "this demo server holds for you.";
    var note = document.createElement("p");
    note.className = "muted small";
    note.textContent = "A real foureyes server never offers this: there, only your own " +
      "security key or passkey confirms a review.";
    box.appendChild(input);
    box.appendChild(label);
    box.appendChild(note);
    var actions = form.querySelector("button[data-decision]");
    var where = actions ? actions.closest(".actions") || actions.parentNode : null;
    if (where && where.parentNode === form) form.insertBefore(box, where);
    else form.appendChild(box);
    return input;
  }

  function setUpReview(form) {
    var demoBox = demoServer() ? addDemoBox(form) : null;
    form.addEventListener("submit", async function (event) {
      if (form.dataset.stepUpReady === "1") return; // the assertion is in: let it go
      event.preventDefault();
      var submitter = event.submitter || form.querySelector("button[data-decision]");
      var decision = submitter ? submitter.getAttribute("data-decision") : "";
      if (decision !== "approve" && decision !== "deny") return;
      var useDemo = !!(demoBox && demoBox.checked);
      if (!useDemo && !supported()) {
        show(form, "This review needs a security key, and this browser cannot use one.");
        return;
      }
      show(form, "");
      var buttons = form.querySelectorAll("button[data-decision]");
      buttons.forEach(function (b) { b.disabled = true; });
      var rpId = "";
      try {
        if (useDemo) {
          var demoUrl = form.getAttribute("data-demo-step-up-url") || "/console/demo/step-up";
          var signed = await postJSON(demoUrl, {
            request_id: form.getAttribute("data-request-id"),
            decision: decision,
          });
          form.elements.step_up.value = JSON.stringify(signed);
        } else {
          var optionsUrl =
            form.getAttribute("data-step-up-options-url") || "/console/webauthn/assertion/options";
          var options = await postJSON(optionsUrl, {
            request_id: form.getAttribute("data-request-id"),
            decision: decision,
          });
          rpId = options.rpId;
          var credential = await navigator.credentials.get({ publicKey: requestOptions(options) });
          form.elements.step_up.value = JSON.stringify({
            method: "webauthn",
            credential: assertionJSON(credential),
          });
        }
        // form.submit() sends no submitter: the verdict goes in the hidden `decision` field.
        var hidden = form.querySelector('input[type="hidden"][name="decision"]');
        if (!hidden) {
          hidden = document.createElement("input");
          hidden.type = "hidden";
          hidden.name = "decision";
          form.appendChild(hidden);
        }
        hidden.value = decision;
        form.dataset.stepUpReady = "1";
        form.submit();
      } catch (error) {
        var message = why(error, rpId);
        if (demoBox && !useDemo) {
          message += " (Demo: no key here? Tick the demo box above and try again.)";
        }
        show(form, message);
        buttons.forEach(function (b) { b.disabled = false; });
      }
    });
  }

  function start() {
    document.querySelectorAll("form[data-webauthn-enrol]").forEach(setUpEnrolment);
    document.querySelectorAll('form[data-step-up="1"]').forEach(setUpReview);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
