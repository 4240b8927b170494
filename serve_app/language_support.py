"""What each language is called in itself, and what the deployed stages can do with it.

`NATIVE_NAMES` (autonyms) comes from the `lang_name` of glibc's locale sources (which follow CLDR),
plus the CLDR autonym of the few languages glibc has no locale for; a language missing here falls
back to its English name (cjk, dik, dyu, fon, kbp, kg, kmb, kr, lua, mos, nus, taq, tum, tzm, umb).
`WHISPER_LANGUAGES` is the language table of the multilingual Whisper models (faster-whisper's
tokenizer, 100 codes, as Whisper spells them: `jw` is our `jv`); an English-only model transcribes English alone.
"""

from __future__ import annotations

from typing import Any

from serve_app.errors import UnsupportedLanguageError
from serve_app.languages import SUPPORTED_LANGUAGES, is_supported, normalize_language, to_nllb

NATIVE_NAMES: dict[str, str] = {
    "af": "Afrikaans", "ak": "Akan", "am": "አማርኛ", "ar": "العربية", "as": "অসমীয়া", "ay": "Aymar aru",
    "az": "azərbaycan", "ba": "башҡорт теле", "be": "беларуская", "bem": "Ichibemba", "bg": "български",
    "bm": "bamanakan", "bn": "বাংলা", "bo": "བོད་སྐད་", "bs": "bosanski", "ca": "català", "ceb": "Cebuano",
    "cs": "čeština", "cy": "Cymraeg", "da": "dansk", "de": "Deutsch", "dz": "རྫོང་ཁ", "ee": "Eʋegbe",
    "el": "Ελληνικά", "en": "English", "eo": "esperanto", "es": "español", "et": "eesti", "eu": "euskara",
    "fa": "فارسی", "ff": "Pulaar", "fi": "suomi", "fj": "Vosa Vakaviti", "fo": "føroyskt", "fr": "français",
    "ga": "Gaeilge", "gd": "Gàidhlig", "gl": "galego", "gn": "Avañe'ẽ", "gu": "ગુજરાતી", "ha": "Hausa",
    "haw": "ʻŌlelo Hawaiʻi", "he": "עברית", "hi": "हिन्दी", "hr": "hrvatski", "ht": "Kreyòl ayisyen",
    "hu": "magyar", "hy": "հայերեն", "id": "Indonesia", "ig": "Asụsụ Igbo", "is": "íslenska", "it": "italiano",
    "ja": "日本語", "jv": "Jawa", "ka": "ქართული", "kab": "Taqbaylit", "kam": "Kikamba", "kea": "kabuverdianu",
    "ki": "Gikuyu", "kk": "қазақ тілі", "km": "ខ្មែរ", "kn": "ಕನ್ನಡ", "ko": "한국어", "ks": "کٲشُر", "ku": "kurdî",
    "ky": "кыргызча", "lb": "Lëtzebuergesch", "lg": "Luganda", "li": "Lèmbörgs", "ln": "lingála", "lo": "ລາວ",
    "lt": "lietuvių", "luo": "Dholuo", "lv": "latviešu", "mg": "Malagasy", "mi": "Māori", "mk": "македонски",
    "ml": "മലയാളം", "mn": "монгол", "mr": "मराठी", "ms": "Melayu", "mt": "Malti", "my": "မြန်မာ", "ne": "नेपाली",
    "nl": "Nederlands", "nn": "nynorsk", "no": "norsk", "nso": "Sesotho sa Leboa", "ny": "Chichewa",
    "oc": "occitan", "om": "Oromoo", "or": "ଓଡ଼ିଆ", "pa": "ਪੰਜਾਬੀ", "pl": "polski", "ps": "پښتو", "pt": "português",
    "qu": "Runasimi", "rn": "Ikirundi", "ro": "română", "ru": "русский", "rw": "Kinyarwanda", "sa": "संस्कृतम्",
    "sc": "sardu", "sd": "سنڌي", "sg": "Sängö", "si": "සිංහල", "sk": "slovenčina", "sl": "slovenščina",
    "sm": "Gagana faʻa Sāmoa", "sn": "chiShona", "so": "Soomaali", "sq": "shqip", "sr": "српски", "ss": "siSwati",
    "st": "Sesotho", "su": "Basa Sunda", "sv": "svenska", "sw": "Kiswahili", "ta": "தமிழ்", "te": "తెలుగు",
    "tg": "тоҷикӣ", "th": "ไทย", "ti": "ትግርኛ", "tk": "türkmen dili", "tl": "Tagalog", "tn": "Setswana",
    "tr": "Türkçe", "ts": "Xitsonga", "tt": "татар", "tw": "Twi", "ug": "ئۇيغۇرچە", "uk": "українська",
    "ur": "اردو", "uz": "o‘zbek", "vi": "Tiếng Việt", "wo": "Wolof", "xh": "isiXhosa", "yi": "ייִדיש",
    "yo": "Èdè Yorùbá", "yue": "粵語", "zh": "中文", "zu": "isiZulu",
}

WHISPER_LANGUAGES: frozenset[str] = frozenset({
    "af", "am", "ar", "as", "az", "ba", "be", "bg", "bn", "bo", "br", "bs", "ca", "cs", "cy", "da", "de", "el",
    "en", "es", "et", "eu", "fa", "fi", "fo", "fr", "gl", "gu", "ha", "haw", "he", "hi", "hr", "ht", "hu", "hy",
    "id", "is", "it", "ja", "jw", "ka", "kk", "km", "kn", "ko", "la", "lb", "ln", "lo", "lt", "lv", "mg", "mi",
    "mk", "ml", "mn", "mr", "ms", "mt", "my", "ne", "nl", "nn", "no", "oc", "pa", "pl", "ps", "pt", "ro", "ru",
    "sa", "sd", "si", "sk", "sl", "sn", "so", "sq", "sr", "su", "sv", "sw", "ta", "te", "tg", "th", "tk", "tl",
    "tr", "tt", "uk", "ur", "uz", "vi", "yi", "yo", "yue", "zh",
})

DEFAULT_TTS_CHAIN = "*"  # the synthesizer's chain for languages without their own


def native_name(code: str) -> str:
    return NATIVE_NAMES.get(code) or SUPPORTED_LANGUAGES[code].name


def _transcribable(components: dict[str, Any]) -> set[str]:
    transcriber = components.get("transcriber") or {}
    if transcriber.get("status") != "ready":
        return set()
    if not transcriber.get("multilingual", True):
        return {"en"}
    return {normalize_language(code) for code in WHISPER_LANGUAGES if is_supported(code)}


def _speakable(components: dict[str, Any]) -> set[str]:
    """Languages that a loaded TTS backend of their chain claims (the synthesizer's own rule)."""
    synthesizer = components.get("synthesizer") or {}
    if synthesizer.get("status") != "ready":
        return set()
    loaded: dict[str, Any] = synthesizer.get("loaded") or {}
    chains: dict[str, list[str]] = synthesizer.get("language_chains") or {}
    out: set[str] = set()
    for code in SUPPORTED_LANGUAGES:
        for name in chains.get(code) or chains.get(DEFAULT_TTS_CHAIN) or []:
            langs = (loaded.get(name) or {}).get("languages")
            if langs == "*" or (isinstance(langs, list) and code in langs):
                out.add(code)
                break
    return out


def _translatable(code: str) -> bool:
    try:
        to_nllb(code)
    except UnsupportedLanguageError:
        return False
    return True


def language_features(components: dict[str, Any]) -> dict[str, dict[str, bool]]:
    """Per language: {transcription, translation, tts, voiceClone}, from the stages' own descriptions
    (`VoicePipeline.health()["components"]`): a stage that is not ready supports nothing. Voice
    cloning converts whatever TTS speaks, so it follows TTS while the cloner is up."""
    transcribable = _transcribable(components)
    speakable = _speakable(components)
    translator_up = (components.get("translator") or {}).get("status") == "ready"
    cloner_up = (components.get("voice_cloner") or {}).get("status") == "ready"
    return {
        code: {
            "transcription": code in transcribable,
            "translation": translator_up and _translatable(code),
            "tts": code in speakable,
            "voiceClone": cloner_up and code in speakable,
        }
        for code in SUPPORTED_LANGUAGES
    }
