// Login with an operator token (admin.token, or one from `weft token create`).
// The token is checked with /whoami before it is kept.
import { ApiError, api, cleanToken, session, tokenProblem } from '../api.js';
import { clear, errorBox, h } from '../dom.js';

/** `notice`: the ApiError that ended the previous session (its token refused), said above the form. */
export function render(view, { onLogin, notice }) {
  const input = h('input#token', { type: 'password', name: 'token', autocomplete: 'off', placeholder: 'weft_…', required: true, size: 48 });
  const status = h('div.status');
  const form = h('form.card.login', {
    onsubmit: async (e) => {
      e.preventDefault();
      // What a paste adds (spaces, line breaks, zero-width characters) is dropped; what is left must be a token's
      // characters, or it is refused here: sent, it failed in fetch() and read as the control plane being unreachable.
      const token = cleanToken(input.value);
      const problem = token ? tokenProblem(token) : 'no token: the field holds only spaces or invisible characters';
      if (problem) {
        clear(status, errorBox(new ApiError(0, 'INVALID_TOKEN', problem), 'login'));
        return;
      }
      clear(status, 'checking…');
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
    notice
      ? h('div.banner.error#session-ended', { role: 'alert' },
        h('strong', 'Logged out: '),
        notice.code === 'INVALID_TOKEN' ? 'the session held something that is not a token. ' : 'the control plane refused your token (revoked, or unknown to it). ',
        'Log in with a valid token. ',
        h('span.muted', `(${notice.code}: ${notice.message})`))
      : null,
    h('p', 'Paste an operator token: the admin token the control plane wrote to ', h('code', '<data-dir>/admin.token'), ', or one made with ', h('code', 'weft token create --role viewer'), '. Viewers see everything and change nothing.'),
    h('label', { for: 'token' }, 'Token'), input,
    h('button', { type: 'submit' }, 'Log in'),
    status,
  );
  clear(view, form);
  input.focus();
  return null;
}
