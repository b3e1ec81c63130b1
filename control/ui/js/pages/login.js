// Login with an operator token (admin.token, or one from `weft token create`).
// The token is checked with /whoami before it is kept.
import { api, session } from '../api.js';
import { clear, errorBox, h } from '../dom.js';

export function render(view, { onLogin }) {
  const input = h('input#token', { type: 'password', name: 'token', autocomplete: 'off', placeholder: 'weft_…', required: true, size: 48 });
  const status = h('div.status');
  const form = h('form.card.login', {
    onsubmit: async (e) => {
      e.preventDefault();
      clear(status, 'checking…');
      const token = input.value.trim();
      try {
        await api('GET', '/whoami', undefined, token);
      } catch (err) {
        clear(status, errorBox(err, 'login'));
        return;
      }
      session.token = token;
      session.operator = null;
      await onLogin();
    },
  },
    h('h1', 'Log in'),
    h('p', 'Paste an operator token: the admin token the control plane wrote to ', h('code', '<data-dir>/admin.token'), ', or one made with ', h('code', 'weft token create --role viewer'), '. Viewers see everything and change nothing.'),
    h('label', { for: 'token' }, 'Token'), input,
    h('button', { type: 'submit' }, 'Log in'),
    status,
  );
  clear(view, form);
  input.focus();
  return null;
}
