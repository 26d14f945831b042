"""Broker API keys encrypted at rest: ciphertext in PostgreSQL, plaintext through the
selector, a clear failure with the wrong keys, secrets never shown by the admin."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.db import connection

from apps.audit.models import AuditEvent
from apps.credentials.crypto import derive_keys
from apps.credentials.exceptions import CredentialInvalid, CredentialUndecryptable
from apps.credentials.models import BrokerCredential
from apps.credentials.selectors import BrokerCredentials, broker_credentials_for
from apps.credentials.services import broker_credential_set
from tests.conftest import otp_login
from tests.trading.factories import paper_account

pytestmark = pytest.mark.django_db

KEY = "kraken-api-key-AbCdEf0123456789"
SECRET = "c2VjcmV0LWtyYWtlbi1wcml2YXRlLWtleS0xMjM0NTY3ODkw=="
EXTRA = "otp-seed-JBSWY3DPEHPK3PXP"


def raw_row(account_id: int) -> tuple[str, str, str | None]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT api_key, api_secret, extra_secret FROM credentials_brokercredential "
            "WHERE account_id = %s",
            [account_id],
        )
        return cursor.fetchone()


@pytest.fixture
def stored():
    account = paper_account()
    broker_credential_set(
        account_id=account.pk, api_key=KEY, api_secret=SECRET, extra_secret=EXTRA, actor="test"
    )
    return account


def test_set_when_saved_then_postgres_holds_fernet_ciphertext_only(stored):
    # Act
    raw = raw_row(stored.pk)
    # Assert: Fernet tokens (version byte 0x80 -> "gAAAAA"), none containing the plaintext
    for value, plain in zip(raw, (KEY, SECRET, EXTRA), strict=True):
        assert value.startswith("gAAAAA")
        assert plain not in value
    # ... that the library's own key (SECRET_KEY + SALT_KEY) opens
    fernet = Fernet(BrokerCredential._meta.get_field("api_key").keys[0])
    assert fernet.decrypt(raw[0].encode()).decode() == KEY
    assert fernet.decrypt(raw[1].encode()).decode() == SECRET


def test_selector_when_stored_then_plaintext_back_and_repr_hides_it(stored):
    creds = broker_credentials_for(account_id=stored.pk)

    assert creds == BrokerCredentials(
        account_id=stored.pk, api_key=KEY, api_secret=SECRET, extra_secret=EXTRA
    )
    assert KEY not in repr(creds)
    assert SECRET not in repr(creds)


def test_selector_when_no_credentials_then_none():
    assert broker_credentials_for(account_id=paper_account().pk) is None


def test_selector_when_secret_key_changed_then_clear_error(stored, settings):
    settings.SECRET_KEY = "another-secret-key-" + "x1y2z3" * 10

    with pytest.raises(CredentialUndecryptable, match="cannot be decrypted.*DJANGO_SECRET_KEY"):
        broker_credentials_for(account_id=stored.pk)


def test_selector_when_salt_changed_then_clear_error(stored, settings):
    settings.SALT_KEY = "a-different-salt-0123456789"

    with pytest.raises(CredentialUndecryptable, match="api_key of account"):
        broker_credentials_for(account_id=stored.pk)


def test_selector_when_secret_key_rotated_with_fallback_then_still_read(stored, settings):
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "the-new-secret-key-" + "q7w8e9" * 10

    assert broker_credentials_for(account_id=stored.pk).api_secret == SECRET


def test_derive_keys_when_settings_given_then_the_librarys_keys(settings):
    field = BrokerCredential._meta.get_field("api_secret")
    assert derive_keys((settings.SECRET_KEY,), (settings.SALT_KEY,)) == field.keys


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"api_key": "", "api_secret": SECRET}, "api_key is required"),
        ({"api_key": KEY, "api_secret": "  "}, "api_secret is required"),
        ({"api_key": "abc def", "api_secret": SECRET}, "api_key contains whitespace"),
    ],
)
def test_set_when_value_bad_then_refused_and_nothing_stored(values, message):
    account = paper_account()

    with pytest.raises(CredentialInvalid, match=message):
        broker_credential_set(account_id=account.pk, actor="test", **values)
    assert not BrokerCredential.objects.exists()


def test_set_when_replaced_then_audited_without_any_value(stored):
    broker_credential_set(account_id=stored.pk, api_key=KEY + "2", api_secret=SECRET, actor="t")

    events = AuditEvent.objects.filter(action__startswith="broker_credential.")
    assert [e.action for e in events.order_by("id")] == [
        "broker_credential.create",
        "broker_credential.replace",
    ]
    dumped = repr(list(events.values()))
    assert KEY not in dumped
    assert SECRET not in dumped
    assert broker_credentials_for(account_id=stored.pk).api_key == KEY + "2"
    assert broker_credentials_for(account_id=stored.pk).extra_secret == EXTRA  # kept


def test_admin_when_pages_shown_then_secrets_never_in_html(stored, client, django_user_model):
    admin_user = django_user_model.objects.create_superuser(username="root", password="pw-x-1")
    otp_login(client, admin_user)
    row = BrokerCredential.objects.get(account=stored)
    raw = raw_row(stored.pk)

    listing = client.get("/admin/credentials/brokercredential/").content.decode()
    change = client.get(f"/admin/credentials/brokercredential/{row.pk}/change/").content.decode()

    for html in (listing, change):
        for secret in (KEY, SECRET, EXTRA, *raw):
            assert secret not in html
    assert "••••••••" + KEY[-4:] in listing


def test_admin_when_edited_with_empty_secret_then_kept_and_key_replaced(
    stored, client, django_user_model
):
    admin_user = django_user_model.objects.create_superuser(username="root", password="pw-x-1")
    otp_login(client, admin_user)
    row = BrokerCredential.objects.get(account=stored)

    response = client.post(
        f"/admin/credentials/brokercredential/{row.pk}/change/",
        {"api_key": "new-key-0987654321", "api_secret": "", "extra_secret": ""},
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    creds = broker_credentials_for(account_id=stored.pk)
    assert (creds.api_key, creds.api_secret, creds.extra_secret) == (
        "new-key-0987654321",
        SECRET,
        EXTRA,
    )
    assert AuditEvent.objects.filter(action="broker_credential.replace", actor="user:root").exists()
