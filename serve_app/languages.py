"""Language codes: the service speaks ISO 639-1 on the wire, NLLB models speak FLORES-200.

One table maps both ways so every stage (Whisper's detected language, the client's target, the
translation model's token, the TTS voice) agrees on a single canonical short code. Languages
without an ISO 639-1 code (several African languages NLLB covers) use their ISO 639-3 code, as
BCP-47 does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from serve_app.errors import UnsupportedLanguageError


@dataclass(frozen=True)
class Language:
    code: str  # canonical service code (ISO 639-1, else ISO 639-3)
    nllb: str  # FLORES-200 code used by NLLB tokenizers
    name: str  # English name


_TABLE: tuple[tuple[str, str, str], ...] = (
    ("af", "afr_Latn", "Afrikaans"),
    ("ak", "aka_Latn", "Akan"),
    ("am", "amh_Ethi", "Amharic"),
    ("ar", "arb_Arab", "Arabic"),
    ("as", "asm_Beng", "Assamese"),
    ("ay", "ayr_Latn", "Aymara"),
    ("az", "azj_Latn", "Azerbaijani"),
    ("ba", "bak_Cyrl", "Bashkir"),
    ("be", "bel_Cyrl", "Belarusian"),
    ("bg", "bul_Cyrl", "Bulgarian"),
    ("bm", "bam_Latn", "Bambara"),
    ("bn", "ben_Beng", "Bengali"),
    ("bo", "bod_Tibt", "Tibetan"),
    ("bs", "bos_Latn", "Bosnian"),
    ("ca", "cat_Latn", "Catalan"),
    ("cs", "ces_Latn", "Czech"),
    ("cy", "cym_Latn", "Welsh"),
    ("da", "dan_Latn", "Danish"),
    ("de", "deu_Latn", "German"),
    ("dz", "dzo_Tibt", "Dzongkha"),
    ("ee", "ewe_Latn", "Ewe"),
    ("el", "ell_Grek", "Greek"),
    ("en", "eng_Latn", "English"),
    ("eo", "epo_Latn", "Esperanto"),
    ("es", "spa_Latn", "Spanish"),
    ("et", "est_Latn", "Estonian"),
    ("eu", "eus_Latn", "Basque"),
    ("fa", "pes_Arab", "Persian"),
    ("ff", "fuv_Latn", "Fula"),
    ("fi", "fin_Latn", "Finnish"),
    ("fj", "fij_Latn", "Fijian"),
    ("fo", "fao_Latn", "Faroese"),
    ("fr", "fra_Latn", "French"),
    ("ga", "gle_Latn", "Irish"),
    ("gd", "gla_Latn", "Scottish Gaelic"),
    ("gl", "glg_Latn", "Galician"),
    ("gn", "grn_Latn", "Guarani"),
    ("gu", "guj_Gujr", "Gujarati"),
    ("ha", "hau_Latn", "Hausa"),
    ("he", "heb_Hebr", "Hebrew"),
    ("hi", "hin_Deva", "Hindi"),
    ("hr", "hrv_Latn", "Croatian"),
    ("ht", "hat_Latn", "Haitian Creole"),
    ("hu", "hun_Latn", "Hungarian"),
    ("hy", "hye_Armn", "Armenian"),
    ("id", "ind_Latn", "Indonesian"),
    ("ig", "ibo_Latn", "Igbo"),
    ("is", "isl_Latn", "Icelandic"),
    ("it", "ita_Latn", "Italian"),
    ("ja", "jpn_Jpan", "Japanese"),
    ("jv", "jav_Latn", "Javanese"),
    ("ka", "kat_Geor", "Georgian"),
    ("kg", "kon_Latn", "Kongo"),
    ("ki", "kik_Latn", "Kikuyu"),
    ("kk", "kaz_Cyrl", "Kazakh"),
    ("km", "khm_Khmr", "Khmer"),
    ("kn", "kan_Knda", "Kannada"),
    ("ko", "kor_Hang", "Korean"),
    ("kr", "knc_Latn", "Kanuri"),
    ("ks", "kas_Arab", "Kashmiri"),
    ("ku", "kmr_Latn", "Kurdish"),
    ("ky", "kir_Cyrl", "Kyrgyz"),
    ("lb", "ltz_Latn", "Luxembourgish"),
    ("lg", "lug_Latn", "Ganda"),
    ("li", "lim_Latn", "Limburgish"),
    ("ln", "lin_Latn", "Lingala"),
    ("lo", "lao_Laoo", "Lao"),
    ("lt", "lit_Latn", "Lithuanian"),
    ("lv", "lvs_Latn", "Latvian"),
    ("mg", "plt_Latn", "Malagasy"),
    ("mi", "mri_Latn", "Maori"),
    ("mk", "mkd_Cyrl", "Macedonian"),
    ("ml", "mal_Mlym", "Malayalam"),
    ("mn", "khk_Cyrl", "Mongolian"),
    ("mr", "mar_Deva", "Marathi"),
    ("ms", "zsm_Latn", "Malay"),
    ("mt", "mlt_Latn", "Maltese"),
    ("my", "mya_Mymr", "Burmese"),
    ("ne", "npi_Deva", "Nepali"),
    ("nl", "nld_Latn", "Dutch"),
    ("nn", "nno_Latn", "Norwegian Nynorsk"),
    ("no", "nob_Latn", "Norwegian"),
    ("ny", "nya_Latn", "Chichewa"),
    ("oc", "oci_Latn", "Occitan"),
    ("om", "gaz_Latn", "Oromo"),
    ("or", "ory_Orya", "Odia"),
    ("pa", "pan_Guru", "Punjabi"),
    ("pl", "pol_Latn", "Polish"),
    ("ps", "pbt_Arab", "Pashto"),
    ("pt", "por_Latn", "Portuguese"),
    ("qu", "quy_Latn", "Quechua"),
    ("rn", "run_Latn", "Kirundi"),
    ("ro", "ron_Latn", "Romanian"),
    ("ru", "rus_Cyrl", "Russian"),
    ("rw", "kin_Latn", "Kinyarwanda"),
    ("sa", "san_Deva", "Sanskrit"),
    ("sc", "srd_Latn", "Sardinian"),
    ("sd", "snd_Arab", "Sindhi"),
    ("sg", "sag_Latn", "Sango"),
    ("si", "sin_Sinh", "Sinhala"),
    ("sk", "slk_Latn", "Slovak"),
    ("sl", "slv_Latn", "Slovenian"),
    ("sm", "smo_Latn", "Samoan"),
    ("sn", "sna_Latn", "Shona"),
    ("so", "som_Latn", "Somali"),
    ("sq", "als_Latn", "Albanian"),
    ("sr", "srp_Cyrl", "Serbian"),
    ("ss", "ssw_Latn", "Swati"),
    ("st", "sot_Latn", "Southern Sotho"),
    ("su", "sun_Latn", "Sundanese"),
    ("sv", "swe_Latn", "Swedish"),
    ("sw", "swh_Latn", "Swahili"),
    ("ta", "tam_Taml", "Tamil"),
    ("te", "tel_Telu", "Telugu"),
    ("tg", "tgk_Cyrl", "Tajik"),
    ("th", "tha_Thai", "Thai"),
    ("ti", "tir_Ethi", "Tigrinya"),
    ("tk", "tuk_Latn", "Turkmen"),
    ("tl", "tgl_Latn", "Tagalog"),
    ("tn", "tsn_Latn", "Tswana"),
    ("tr", "tur_Latn", "Turkish"),
    ("ts", "tso_Latn", "Tsonga"),
    ("tt", "tat_Cyrl", "Tatar"),
    ("tw", "twi_Latn", "Twi"),
    ("ug", "uig_Arab", "Uyghur"),
    ("uk", "ukr_Cyrl", "Ukrainian"),
    ("ur", "urd_Arab", "Urdu"),
    ("uz", "uzn_Latn", "Uzbek"),
    ("vi", "vie_Latn", "Vietnamese"),
    ("wo", "wol_Latn", "Wolof"),
    ("xh", "xho_Latn", "Xhosa"),
    ("yi", "ydd_Hebr", "Yiddish"),
    ("yo", "yor_Latn", "Yoruba"),
    ("zh", "zho_Hans", "Chinese"),
    ("zu", "zul_Latn", "Zulu"),
    # No ISO 639-1 code: ISO 639-3 is the canonical code (mostly African languages NLLB covers).
    ("bem", "bem_Latn", "Bemba"),
    ("cjk", "cjk_Latn", "Chokwe"),
    ("dik", "dik_Latn", "Dinka"),
    ("dyu", "dyu_Latn", "Dyula"),
    ("fon", "fon_Latn", "Fon"),
    ("kab", "kab_Latn", "Kabyle"),
    ("kam", "kam_Latn", "Kamba"),
    ("kbp", "kbp_Latn", "Kabiye"),
    ("kea", "kea_Latn", "Kabuverdianu"),
    ("kmb", "kmb_Latn", "Kimbundu"),
    ("lua", "lua_Latn", "Luba-Kasai"),
    ("luo", "luo_Latn", "Luo"),
    ("mos", "mos_Latn", "Mossi"),
    ("nso", "nso_Latn", "Northern Sotho"),
    ("nus", "nus_Latn", "Nuer"),
    ("taq", "taq_Latn", "Tamasheq"),
    ("tum", "tum_Latn", "Tumbuka"),
    ("tzm", "tzm_Tfng", "Central Atlas Tamazight"),
    ("umb", "umb_Latn", "Umbundu"),
    ("ceb", "ceb_Latn", "Cebuano"),
    ("haw", "haw_Latn", "Hawaiian"),
    ("yue", "yue_Hant", "Cantonese"),
)

SUPPORTED_LANGUAGES: dict[str, Language] = {c: Language(c, n, name) for c, n, name in _TABLE}
"""Canonical code -> Language, for every language the service accepts."""

_BY_NLLB: dict[str, str] = {lang.nllb.lower(): lang.code for lang in SUPPORTED_LANGUAGES.values()}
# Other FLORES-200 variants that fold onto one of our languages (e.g. what an NLLB model detects).
_BY_NLLB.update(
    {
        "zho_hant": "zh",
        "prs_arab": "fa",
        "arz_arab": "ar",
        "ary_arab": "ar",
        "ars_arab": "ar",
        "apc_arab": "ar",
        "ajp_arab": "ar",
        "acm_arab": "ar",
        "acq_arab": "ar",
        "aeb_arab": "ar",
        "knc_arab": "kr",
        "kas_deva": "ks",
        "taq_tfng": "taq",
    }
)
# Hawaiian is not in FLORES-200; keep it out of the NLLB mapping but accept the code for Whisper.
_NO_NLLB = {"haw"}

_BY_NAME: dict[str, str] = {lang.name.lower(): lang.code for lang in SUPPORTED_LANGUAGES.values()}

# Deprecated or alternative codes seen in the wild (Whisper, browsers, ISO 639-2/B, ISO 639-3).
_ALIASES: dict[str, str] = {
    "iw": "he",
    "in": "id",
    "ji": "yi",
    "jw": "jv",
    "nb": "no",
    "fil": "tl",
    "mo": "ro",
    "sh": "hr",
    "fre": "fr",
    "ger": "de",
    "dut": "nl",
    "chi": "zh",
    "cze": "cs",
    "gre": "el",
    "per": "fa",
    "arm": "hy",
    "rum": "ro",
    "slo": "sk",
    "alb": "sq",
    "wel": "cy",
    "baq": "eu",
    "geo": "ka",
    "ice": "is",
    "mac": "mk",
    "may": "ms",
    "bur": "my",
    "msa": "ms",
    "swa": "sw",
    "ara": "ar",
    "fas": "fa",
    "nor": "no",
    "zho": "zh",
    "orm": "om",
    "lav": "lv",
    "ful": "ff",
    "mlg": "mg",
    "mon": "mn",
    "nep": "ne",
    "pus": "ps",
    "que": "qu",
    "uzb": "uz",
    "kur": "ku",
    "aze": "az",
    "est": "et",
    "sqi": "sq",
    "kau": "kr",
}
# ISO 639-3 codes are the first part of every FLORES-200 code ("fra" from "fra_Latn").
for _nllb, _code in list(_BY_NLLB.items()):
    _ALIASES.setdefault(_nllb.split("_", 1)[0], _code)

_CODE_RE = re.compile(r"^[a-z]{2,3}$")

HOW_TO_LIST = (
    "see serve_app.languages.SUPPORTED_LANGUAGES (GET /languages lists them) for the "
    "ISO 639-1 codes the service accepts"
)


def normalize_language(code: str) -> str:
    """Return the canonical service code for any reasonable spelling of a language.

    Accepts 'fr', 'FR', 'fr-FR', 'fr_CA', 'fra', 'fra_Latn', 'French'. Raises
    UnsupportedLanguageError otherwise, so a bad client value fails before any model runs.
    """
    if not isinstance(code, str) or not code.strip():
        raise UnsupportedLanguageError(f"empty language code; {HOW_TO_LIST}")
    raw = code.strip()
    low = raw.lower()
    if low in _BY_NLLB:
        return _BY_NLLB[low]
    if low in _BY_NAME:
        return _BY_NAME[low]
    base = re.split(r"[-_]", low, maxsplit=1)[0]
    if _CODE_RE.match(base):
        if base in SUPPORTED_LANGUAGES:
            return base
        if base in _ALIASES:
            return _ALIASES[base]
    raise UnsupportedLanguageError(f"unsupported language {raw!r}; {HOW_TO_LIST}")


def to_nllb(code: str) -> str:
    """FLORES-200 code for a language, e.g. 'fr' -> 'fra_Latn' (the NLLB target token)."""
    canonical = normalize_language(code)
    if canonical in _NO_NLLB:
        raise UnsupportedLanguageError(
            f"language {canonical!r} has no NLLB (FLORES-200) code; {HOW_TO_LIST}"
        )
    return SUPPORTED_LANGUAGES[canonical].nllb


def from_nllb(code: str) -> str:
    """Canonical service code for a FLORES-200 code, e.g. 'fra_Latn' -> 'fr'."""
    try:
        return _BY_NLLB[code.strip().lower()]
    except (KeyError, AttributeError):
        raise UnsupportedLanguageError(
            f"unknown NLLB language code {code!r}; {HOW_TO_LIST}"
        ) from None


def language_name(code: str) -> str:
    """English name of a language ('fr' -> 'French'), used in LLM prompts and listings."""
    return SUPPORTED_LANGUAGES[normalize_language(code)].name


def is_supported(code: str) -> bool:
    """True when normalize_language would accept the code."""
    try:
        normalize_language(code)
    except UnsupportedLanguageError:
        return False
    return True
