// The two-factor page: once a passkey is registered (django-otp-webauthn's script sends the
// event), reload so it shows in the list.
document.addEventListener("otp_webauthn.register_complete", () => {
  window.location.reload();
});
