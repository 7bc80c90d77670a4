/**
 * "Here now", the change notice and who is editing, for Volto: a compact
 * bar at the bottom right of every content page of a logged-in user.
 */
import React, { useEffect, useState } from 'react';
import { useSelector } from 'react-redux';
import config from '@plone/volto/registry';
import { flattenToAppURL } from '@plone/volto/helpers/Url/Url';
import { apply, attach, hue, initials } from './live';
import './zorg-live.css';

function apiURL(path) {
  const { apiPath, legacyTraverse } = config.settings;
  return `${apiPath}${legacyTraverse ? '' : '/++api++'}${path}`;
}

function liveURL() {
  const settings = config.settings.zorgLive || {};
  if (settings.liveURL) return settings.liveURL;
  return `${config.settings.apiPath.replace(/^http/, 'ws')}/@@live`;
}

const LiveBar = () => {
  const id = useSelector((state) => state.content?.data?.['@id']);
  const token = useSelector((state) => state.userSession?.token);
  const [live, setLive] = useState(null);

  useEffect(() => {
    if (!id || !token || typeof WebSocket === 'undefined') return undefined;
    let detach = null;
    let gone = false;
    const path = flattenToAppURL(id);
    fetch(apiURL(`${path}/@live`), {
      headers: { Accept: 'application/json', Authorization: `Bearer ${token}` },
    })
      .then((response) => (response.ok ? response.json() : null))
      .then((page) => {
        if (!page || gone) return;
        const initial = {
          online: page.online || [],
          notice: '',
          editing: page.editing ? page.editing.html : '',
          closed: false,
        };
        setLive(initial);
        detach = attach(liveURL(), page, initial, setLive);
      })
      .catch(() => {});
    return () => {
      gone = true;
      setLive(null);
      if (detach) detach();
    };
  }, [id, token]);

  if (!live || live.closed) return null;
  return (
    <aside id="zorg-live" className="zorg-live" aria-label="Live">
      {live.online.length > 0 && (
        <div className="zorg-live-here">
          <span className="zorg-live-label">Here now</span>
          <ul id="zorg-live-online" className="zorg-live-avatars">
            {live.online.map((person) => (
              <li key={person.id} data-principal={person.id} title={person.title}>
                <span
                  className="zorg-live-avatar"
                  style={{ '--zorg-live-hue': hue(person.id) }}
                  aria-hidden="true"
                >
                  {initials(person.title)}
                </span>
                <span className="zorg-live-hidden">{person.title}</span>
              </li>
            ))}
          </ul>
        </div>
      )}
      {live.editing && (
        // Rendered by the site (escaped there), as in the Classic UI.
        <div id="zorg-live-editing" role="status" dangerouslySetInnerHTML={{ __html: live.editing }} />
      )}
      {live.notice && (
        <div id="zorg-live-notice" role="status" dangerouslySetInnerHTML={{ __html: live.notice }} />
      )}
    </aside>
  );
};

export default LiveBar;
