"""What WhatsApp itself writes into an exported chat, in the app's main languages.

An export is written in the phone's language, so "This message was deleted" arrives as "Diese
Nachricht wurde gelöscht." or "Se eliminó este mensaje." These tables hold those strings per
language (en, es, de, fr, pt, it, nl, ru, tr, hi, id), old and new wordings both, as other parsers
of this format document them from WhatsApp's Android/iOS string tables and real exports
(chat-analytics' per-locale media table, several export parsers' deleted/edited tables). A body is
compared whole (as written or in lower case, with or without its full stop), never by substring,
so a sentence that merely mentions deletion stays the owner's text.

How sure each table is: deleted, "you deleted", media omitted and the English/German/Spanish edit
marks are each documented by several parsers; the edit marks of the other languages, the poll and
location labels outside en/de/es, the missed-call notices and the Hindi/Indonesian wordings rest
on one source each. A wrong or missing string only means WhatsApp's words stay text, as before:
send the line from a real export and it is a one-line fix here.
"""

from __future__ import annotations

import re

# "This message was deleted" (someone else) / "You deleted this message" (the owner)
DELETED_BY_OTHER = {
    "en": ["This message was deleted"],
    "es": ["Se eliminó este mensaje", "Este mensaje fue eliminado"],
    "de": ["Diese Nachricht wurde gelöscht"],
    "fr": ["Ce message a été supprimé"],
    "pt": [
        "Mensagem apagada",
        "Essa mensagem foi apagada",
        "Esta mensagem foi apagada",
        "Esta mensagem foi eliminada",
    ],
    "it": ["Questo messaggio è stato eliminato"],
    "nl": ["Dit bericht is verwijderd"],
    "ru": ["Данное сообщение удалено", "Это сообщение удалено", "Это сообщение было удалено"],
    "tr": ["Bu mesaj silindi"],
    "hi": ["यह मैसेज मिटाया गया", "यह संदेश मिटाया गया", "यह मैसेज डिलीट कर दिया गया है"],
    "id": ["Pesan ini dihapus", "Pesan ini telah dihapus"],
}
DELETED_BY_ME = {
    "en": ["You deleted this message"],
    "es": ["Eliminaste este mensaje"],
    "de": ["Du hast diese Nachricht gelöscht"],
    "fr": ["Vous avez supprimé ce message"],
    "pt": ["Você apagou esta mensagem", "Apagou esta mensagem", "Apagaste esta mensagem"],
    "it": ["Hai eliminato questo messaggio"],
    "nl": ["Je hebt dit bericht verwijderd", "U heeft dit bericht verwijderd"],
    "ru": ["Вы удалили данное сообщение", "Вы удалили это сообщение"],
    "tr": ["Bu mesajı sildiniz"],
    "hi": ["आपने यह मैसेज मिटाया", "आपने यह मैसेज डिलीट किया"],
    "id": ["Anda menghapus pesan ini", "Anda telah menghapus pesan ini"],
}

# the mark Android appends to an edited message: "<This message was edited>"
EDITED = {
    "en": ["This message was edited"],
    "es": ["Se editó este mensaje"],
    "de": ["Diese Nachricht wurde bearbeitet"],
    "fr": ["Ce message a été modifié"],
    "pt": ["Mensagem editada", "Esta mensagem foi editada"],
    "it": ["Questo messaggio è stato modificato"],
    "nl": ["Dit bericht is bewerkt"],
    "ru": ["Сообщение изменено"],
    "tr": ["Bu mesaj düzenlendi"],
    "hi": ["यह मैसेज एडिट किया गया", "यह मैसेज संपादित किया गया"],
    "id": ["Pesan ini diedit"],
}

# Android "without media" placeholder, one per message: "<Media omitted>"
MEDIA_OMITTED = {
    "en": ["Media omitted"],
    "es": ["Multimedia omitido", "Archivo omitido"],
    "de": ["Medien ausgeschlossen", "Medien weggelassen"],
    "fr": ["Médias omis", "Fichier omis"],
    "pt": ["Mídia omitida", "Mídia oculta", "Arquivo de mídia oculto", "Ficheiro não revelado"],
    "it": ["Media omessi", "Media omesso"],
    "nl": ["Media weggelaten"],
    "ru": ["Без медиафайлов", "Файл пропущен"],
    "tr": ["Medya dahil edilmedi", "Medya atlanmış"],
    "hi": ["मीडिया के बिना"],
    "id": ["Media tidak disertakan"],
}

# iOS names the omitted attachment: "image omitted", "imagen omitida", "Bild weggelassen"
MEDIA_WORDS = (
    "image|video|audio|sticker|GIF|document|Contact card|video note|voice message"
    "|imagen|vídeo|documento|tarjeta de contacto|nota de video"
    "|Bild|Video|Audio|Dokument|Kontaktkarte|Sprachnachricht"
    "|photo|vidéo|fiche contact"
    "|imagem|áudio|figurinha|cartão de contato|cartão do contato"
    "|immagine|scheda contatto"
    "|afbeelding|contactkaart"
    "|изображение|видео|аудиофайл|аудио|стикер|документ|карточка контакта"
    "|görüntü|ses|çıkartma|belge|kişi kartı|fotoğraf"
    "|gambar|stiker|dokumen|kartu kontak"
    "|इमेज|वीडियो|ऑडियो|स्टिकर|दस्तावेज़"
)
MEDIA_OMIT_WORDS = (
    "omitted|omitida|omitido|omitidos|weggelassen|ausgeschlossen|omis|omise|omitida|oculta"
    "|oculto|omessa|omesso|omessi|non incluso|esclusa|weggelaten|отсутствует|пропущен|пропущено"
    "|опущена|dahil edilmedi|tidak disertakan|शामिल नहीं"
)

# Android "with media" export: "IMG-20240314-WA0001.jpg (file attached)"
FILE_ATTACHED = (
    "file attached|archivo adjunto|Datei angehängt|fichier joint|arquivo anexado|ficheiro anexado"
    "|file allegato|bestand bijgevoegd|файл добавлен|файл прикреплен|dosya ekli|file terlampir"
    "|फ़ाइल अटैच की गई|फ़ाइल संलग्न"
)

# a poll: "POLL:\nQuestion\nOPTION: Yes (2 votes)"
POLL = (
    "POLL|ENCUESTA|UMFRAGE|SONDAGE|ENQUETE|SONDAGGIO|PEILING|ОПРОС|ANKET|पोल|POLLING|JAJAK PENDAPAT"
)
POLL_OPTION = "OPTION|OPCIÓN|OPÇÃO|OPZIONE|OPTIE|ВАРИАНТ|SEÇENEK|विकल्प|OPSI|PILIHAN"

# notices that WhatsApp writes under a sender's name (calls, waiting for a message)
NOTICES = {
    "en": ["Missed voice call", "Missed video call", "Waiting for this message"],
    "es": [
        "Llamada perdida",
        "Llamada de voz perdida",
        "Videollamada perdida",
        "Esperando el mensaje",
    ],
    "de": ["Verpasster Sprachanruf", "Verpasster Videoanruf", "Warten auf diese Nachricht"],
    "fr": ["Appel vocal manqué", "Appel vidéo manqué", "En attente de ce message"],
    "pt": ["Chamada de voz perdida", "Chamada de vídeo perdida", "Aguardando mensagem"],
    "it": ["Chiamata vocale persa", "Videochiamata persa", "In attesa di questo messaggio"],
    "nl": ["Gemiste spraakoproep", "Gemiste video-oproep", "Wachten op dit bericht"],
    "ru": ["Пропущенный аудиозвонок", "Пропущенный видеозвонок", "Ожидание этого сообщения"],
    "tr": ["Cevapsız sesli arama", "Cevapsız görüntülü arama", "Bu mesaj bekleniyor"],
    "hi": ["मिस्ड वॉइस कॉल", "मिस्ड वीडियो कॉल"],
    "id": ["Panggilan suara tak terjawab", "Panggilan video tak terjawab", "Menunggu pesan ini"],
}

# the notice at the top of every chat
ENCRYPTION = (
    "Messages and calls are end-to-end encrypted|Messages to this group are now secured"
    "|Los mensajes y las llamadas están cifrados de extremo a extremo"
    "|Nachrichten und Anrufe sind Ende-zu-Ende-verschlüsselt"
    "|Les messages et les appels sont chiffrés de bout en bout"
    "|As mensagens e as chamadas são protegidas com a criptografia de ponta a ponta"
    "|As mensagens e as chamadas são criptografadas de ponta a ponta"
    "|As mensagens e as chamadas têm encriptação de ponta a ponta"
    "|I messaggi e le chiamate sono crittografati end-to-end"
    "|Berichten en oproepen zijn end-to-end versleuteld"
    "|Сообщения и звонки защищены сквозным шифрованием"
    "|Mesajlar ve aramalar uçtan uca şifrelidir"
    "|मैसेज और कॉल एंड-टू-एंड एन्क्रिप्टेड हैं"
    "|Pesan dan panggilan terenkripsi secara end-to-end"
)


def _forms(table: dict[str, list[str]], wrap: str = "{}") -> frozenset[str]:
    """Every form a string takes in exports: as written, lower case, with or without a full stop
    (compared with set look-ups, not by folding each message: this runs for every message)."""
    forms = set()
    for strings in table.values():
        for s in strings:
            for form in (s, s.lower(), s[:1].upper() + s[1:]):
                forms |= {wrap.format(form), wrap.format(form + "."), wrap.format(form + "।")}
    return frozenset(forms)


DELETED_OTHER_SET = _forms(DELETED_BY_OTHER)
DELETED_ME_SET = _forms(DELETED_BY_ME)
NOTICE_SET = _forms(NOTICES)
MEDIA_SET = _forms(MEDIA_OMITTED, "<{}>")
VIEW_ONCE = "null"  # what Android writes, alone and in lower case, for a view-once photo or video

EDITED_MARK = re.compile(
    r"[\s\u200e\u200f]*<(?:"
    + "|".join(re.escape(s) for strings in EDITED.values() for s in strings)
    + r")\.?>[\s\u200e\u200f]*$",
    re.I,
)
MEDIA_NAMED = re.compile(rf"^<?(?:{MEDIA_WORDS}) (?:{MEDIA_OMIT_WORDS})>?$", re.I)
ATTACHED_FILE = re.compile(
    rf"^(?P<file>\S.*?\.\w{{1,5}}) \((?:{FILE_ATTACHED})\)(?: (?P<caption>.+))?$", re.I
)
IOS_ATTACHED = re.compile(r"^(?P<caption>.*?)[\s\u200e]*<attached: (?P<file>[^>]+)>$", re.S)
LOCATION = re.compile(
    r"^[^\s:]{1,20}(?: [^\s:]{1,20})? ?: ?(?P<url>https://maps\.google\.com/\?q=\S+)$"
)
POLL_HEAD = re.compile(rf"^(?:{POLL}) ?:$")
POLL_LINE = re.compile(rf"^(?:{POLL_OPTION}) ?: (?P<option>.*?)(?: \((?P<votes>\d+)[^)]*\))?$")
ENCRYPTION_NOTICE = re.compile(rf"^(?:{ENCRYPTION})", re.I)
# first eight characters of the anchored notices, and last characters of iOS's "<kind> omitted"
NOTICE_PREFIXES = frozenset(
    form[:8]
    for s in ENCRYPTION.split("|")
    + ["Your security code with", "This chat is with a business", "Waiting for this message"]
    for form in (s, s.lower(), s.upper())
)
OMIT_LAST = frozenset(c for w in MEDIA_OMIT_WORDS.split("|") for c in (w[-1], w[-1].upper(), ">"))
# any short <…> alone on Android is a placeholder in some language: <Media omitted>, <Без файл>
ANY_PLACEHOLDER = re.compile(r"^<[^<>\n]{2,60}>$")
