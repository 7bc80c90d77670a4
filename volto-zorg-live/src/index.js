/**
 * volto-zorg-live: zorg.live's Plone add-on, in Volto.
 *
 * Adds an app extra (shown on every page) that asks the backend for a
 * live page of the content (``GET <content>/++api++/@live``, a
 * plone.restapi service: Volto sends the user's token with it), then
 * attaches that page to the site's ``@@live`` WebSocket, which knows the
 * user by the ``auth_token`` cookie in which Volto keeps the token.
 *
 * Settings (config.settings.zorgLive):
 *   liveURL  the WebSocket's URL, e.g. ws://localhost:8080/Plone/@@live
 *            (default: RAZZLE_LIVE_URL at build time, else the API's
 *            URL with @@live). The backend's server must trust the
 *            frontend's origin (its ``trusted-origins`` setting).
 */
import LiveBar from './LiveBar';

export default function applyConfig(config) {
  config.settings.appExtras = [
    ...(config.settings.appExtras || []),
    { match: '', component: LiveBar },
  ];
  config.settings.zorgLive = {
    liveURL: process.env.RAZZLE_LIVE_URL || null,
    ...(config.settings.zorgLive || {}),
  };
  return config;
}
