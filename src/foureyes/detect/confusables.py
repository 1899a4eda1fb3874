"""Letters of other scripts that render like a Latin letter, for the `batch_lookalike`
detector's folding (`lookalikes.fold`).

Neither the standard library nor a locked dependency carries Unicode's confusables data
(UTS #39, `confusables.txt`); this is the small part of it the detector needs, transcribed by
hand (not generated: check it against `confusables.txt` when it is next touched): the
Cyrillic, Greek, Armenian and Latin-extension/IPA letters whose prototype there is one Latin
letter, each mapped to that letter in the case it renders as. Applied before NFKC and case
folding (an uppercase letter folds as the Latin capital it looks like: Cyrillic capital ve
is `B`, whose lowercase is `b`, while its small letter looks like none), and again after
them (for letters those produce, such as Greek capital iota case-folded to small iota).
Letters within Latin that read alike (`i`, `l`, `1`) are the caller's (`lookalikes._READ_AS`).
Written as escapes, named in comments: the source shows what each is.
"""

from __future__ import annotations

LATIN_LOOKALIKES: dict[str, str] = {
    # Cyrillic capitals
    "\u0410": "A",  # cyrillic capital letter a
    "\u0412": "B",  # cyrillic capital letter ve
    "\u0415": "E",  # cyrillic capital letter ie
    "\u041a": "K",  # cyrillic capital letter ka
    "\u041c": "M",  # cyrillic capital letter em
    "\u041d": "H",  # cyrillic capital letter en
    "\u041e": "O",  # cyrillic capital letter o
    "\u0420": "P",  # cyrillic capital letter er
    "\u0421": "C",  # cyrillic capital letter es
    "\u0422": "T",  # cyrillic capital letter te
    "\u0423": "Y",  # cyrillic capital letter u
    "\u0425": "X",  # cyrillic capital letter ha
    "\u0405": "S",  # cyrillic capital letter dze
    "\u0406": "I",  # cyrillic capital letter byelorussian-ukrainian i
    "\u0408": "J",  # cyrillic capital letter je
    "\u042c": "b",  # cyrillic capital letter soft sign
    "\u04ae": "Y",  # cyrillic capital letter straight u
    "\u04c0": "l",  # cyrillic letter palochka
    "\u0500": "d",  # cyrillic capital letter komi de
    "\u051a": "Q",  # cyrillic capital letter qa
    "\u051c": "W",  # cyrillic capital letter we
    "\u0474": "V",  # cyrillic capital letter izhitsa
    # Cyrillic small letters
    "\u0430": "a",  # cyrillic small letter a
    "\u0433": "r",  # cyrillic small letter ghe
    "\u0435": "e",  # cyrillic small letter ie
    "\u043e": "o",  # cyrillic small letter o
    "\u043f": "n",  # cyrillic small letter pe
    "\u0440": "p",  # cyrillic small letter er
    "\u0441": "c",  # cyrillic small letter es
    "\u0443": "y",  # cyrillic small letter u
    "\u0445": "x",  # cyrillic small letter ha
    "\u044c": "b",  # cyrillic small letter soft sign
    "\u0455": "s",  # cyrillic small letter dze
    "\u0456": "i",  # cyrillic small letter byelorussian-ukrainian i
    "\u0458": "j",  # cyrillic small letter je
    "\u045b": "h",  # cyrillic small letter tshe
    "\u04bb": "h",  # cyrillic small letter shha
    "\u04bd": "e",  # cyrillic small letter abkhasian che
    "\u04af": "y",  # cyrillic small letter straight u
    "\u04cf": "l",  # cyrillic small letter palochka
    "\u0475": "v",  # cyrillic small letter izhitsa
    "\u0501": "d",  # cyrillic small letter komi de
    "\u051b": "q",  # cyrillic small letter qa
    "\u051d": "w",  # cyrillic small letter we
    # Greek capitals
    "\u0391": "A",  # greek capital letter alpha
    "\u0392": "B",  # greek capital letter beta
    "\u0395": "E",  # greek capital letter epsilon
    "\u0396": "Z",  # greek capital letter zeta
    "\u0397": "H",  # greek capital letter eta
    "\u0399": "I",  # greek capital letter iota
    "\u039a": "K",  # greek capital letter kappa
    "\u039c": "M",  # greek capital letter mu
    "\u039d": "N",  # greek capital letter nu
    "\u039f": "O",  # greek capital letter omicron
    "\u03a1": "P",  # greek capital letter rho
    "\u03a4": "T",  # greek capital letter tau
    "\u03a5": "Y",  # greek capital letter upsilon
    "\u03a7": "X",  # greek capital letter chi
    "\u03f9": "C",  # greek capital lunate sigma symbol
    "\u037f": "J",  # greek capital letter yot
    # Greek small letters
    "\u03b1": "a",  # greek small letter alpha
    "\u03b3": "y",  # greek small letter gamma
    "\u03b9": "i",  # greek small letter iota
    "\u03bd": "v",  # greek small letter nu
    "\u03bf": "o",  # greek small letter omicron
    "\u03c1": "p",  # greek small letter rho
    "\u03c5": "u",  # greek small letter upsilon
    "\u03f2": "c",  # greek lunate sigma symbol
    "\u03f3": "j",  # greek letter yot
    # Armenian
    "\u053c": "L",  # armenian capital letter liwn
    "\u054d": "U",  # armenian capital letter seh
    "\u0555": "O",  # armenian capital letter oh
    "\u0561": "w",  # armenian small letter ayb
    "\u0566": "q",  # armenian small letter za
    "\u0570": "h",  # armenian small letter ho
    "\u0578": "n",  # armenian small letter vo
    "\u057d": "u",  # armenian small letter seh
    "\u0581": "g",  # armenian small letter co
    "\u0585": "o",  # armenian small letter oh
    # Latin extensions and IPA
    "\u0131": "i",  # latin small letter dotless i
    "\u0237": "j",  # latin small letter dotless j
    "\u01c0": "l",  # latin letter dental click
    "\u0251": "a",  # latin small letter alpha
    "\u0261": "g",  # latin small letter script g
    "\u0269": "i",  # latin small letter iota
    "\u026a": "i",  # latin letter small capital i
    "\u028b": "u",  # latin small letter v with hook
}
