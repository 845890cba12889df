"""`maild check-config` with OAuth2 logins: it gets a token and logs in once,
and says plainly what is wrong (the provider's refusal, the mailbox's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_oauth2_logins import imap_only
from tests.support.daemon import run_maild, write_config
from tests.support.dovecot import DovecotServer
from tests.support.token_endpoint import CLIENT_ID, TokenEndpoint

pytestmark = pytest.mark.integration


def check(tmp_path: Path, server: DovecotServer, endpoint: TokenEndpoint,
          user: str = "helpdesk@example.com") -> tuple[int, str, str]:  # fmt: skip
    extra = imap_only(server, endpoint, tmp_path).replace(
        'username = "helpdesk@example.com"', f'username = "{user}"'
    )
    config, _ = write_config(tmp_path, sink_port=None, extra=extra)
    done = run_maild(config, "check-config")
    return done.returncode, done.stdout, done.stderr


def test_check_config_logs_in_with_a_token(
    tmp_path: Path, token_endpoint: TokenEndpoint, dovecot_oauth2: DovecotServer
) -> None:
    status, out, err = check(tmp_path, dovecot_oauth2, token_endpoint)
    assert status == 0, err
    assert ("imap: helpdesk@example.com logged in with an OAuth2 token "
            "(client-credentials grant)") in out  # fmt: skip
    assert token_endpoint.count("client_credentials") == 1


def test_check_config_says_the_provider_refused_the_client(
    tmp_path: Path, token_endpoint: TokenEndpoint, dovecot_oauth2: DovecotServer
) -> None:
    token_endpoint.revoked.add(CLIENT_ID)
    status, _, err = check(tmp_path, dovecot_oauth2, token_endpoint)
    assert status == 1
    assert "imap: cannot log in: imap.oauth2: the client-credentials grant" in err
    assert "invalid_client: client maild-app is disabled" in err
    assert "(the provider does not know this client id and secret)" in err


def test_check_config_says_the_mailbox_refused_a_good_token(
    tmp_path: Path, token_endpoint: TokenEndpoint, dovecot_oauth2: DovecotServer
) -> None:
    # The tokens are for helpdesk@; the configuration names another mailbox.
    status, _, err = check(tmp_path, dovecot_oauth2, token_endpoint,
                           user="other@example.com")  # fmt: skip
    assert status == 1
    assert "imap: cannot log in:" in err
    assert "the server refused it for this mailbox" in err
    assert "Add-MailboxPermission" in err
