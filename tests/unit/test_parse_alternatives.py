"""Parse step, the best alternative of a multipart/alternative (issue 16).

The plain part wins when it has the text; a blank plain part, or a stub
about HTML under a tenth of the HTML's text, loses to the HTML through
inscriptis. A short plain reply that names no HTML always wins.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from maild.core.parse import parse_mail

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mail" / "realworld"
HTML_TEXT = "L'imprimante du 2e étage affiche une erreur de fusion depuis lundi. " * 12


def alternative(plain: str, html: str) -> bytes:
    return (
        "From: a@example.com\n"
        'Content-Type: multipart/alternative; boundary="alt"\n\n'
        f"--alt\nContent-Type: text/plain; charset=utf-8\n\n{plain}\n"
        f"--alt\nContent-Type: text/html; charset=utf-8\n\n{html}\n"
        "--alt--\n"
    ).encode()


def test_blank_plain_part_in_related_loses_and_the_cid_image_is_kept() -> None:
    mail = parse_mail((FIXTURES / "related_blank_plain.eml").read_bytes())
    assert mail.text == "L'écran reste noir au démarrage.\n"
    (image,) = mail.attachments
    assert image.filename == "image-1.png"
    assert image.is_inline
    assert image.content_id == "ecran-1@example.org"


@pytest.mark.parametrize(
    "plain",
    [
        " \n\t\n",
        "This message is in HTML. View it in a mail program that shows HTML.",
        "Pour lire ce message, affichez-le en HTML.",
        "Afficher ce message dans votre navigateur.",
        "Diese E-Mail im Browser anzeigen.",
        "¿No ve bien este correo? Ábralo en el navegador.",
        "View the web version of this email.",
        "Voir la version en ligne",
    ],
)
def test_blank_or_html_stub_plain_part_loses(plain: str) -> None:
    mail = parse_mail(alternative(plain, f"<p>{HTML_TEXT}</p>"))
    assert mail.text.strip() == HTML_TEXT.strip()
    # and where the plain part has the text, it still wins:
    # a short reply names no HTML, so its quoted history stays out
    html = f"<p>CLOSE</p><blockquote>{HTML_TEXT}</blockquote>"
    assert parse_mail(alternative("CLOSE", html)).text == "CLOSE"
    # a stub whose HTML says no more than it does
    assert (
        parse_mail(alternative("See the HTML.", "<p>See.</p>")).text == "See the HTML."
    )
