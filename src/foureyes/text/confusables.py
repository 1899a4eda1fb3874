"""Letters of other scripts that render like a Latin letter, for the folding of look-alike
names (`foureyes.text.folding.fold`: the `batch_lookalike` detector's and the HR import's) and
the wording rule of a new policy text (`foureyes.policy.wording`: a word spelled with them
reads as a Latin one it is not).

Neither the standard library nor a locked dependency carries Unicode's confusables data
(UTS #39, `confusables.txt`); this is the small part of it the folding needs, transcribed by
hand (not generated: check it against `confusables.txt` when it is next touched): the
Cyrillic, Greek, Armenian, Cherokee, Lisu, Coptic and Latin-extension/IPA/small-capital
letters whose prototype there is one Latin
letter, each mapped to that letter in the case it renders as. Applied before NFKC and case
folding (an uppercase letter folds as the Latin capital it looks like: Cyrillic capital ve
is `B`, whose lowercase is `b`, while its small letter looks like none), and again after
them (for letters those produce, such as Greek capital iota case-folded to small iota).
Letters within Latin that read alike (`i`, `l`, `1`) are the folding's (`folding._READ_AS`).
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
    # Latin letter small capitals (they read as the small letter)
    "\u1d00": "a",  # latin letter small capital a
    "\u0299": "b",  # latin letter small capital b
    "\u1d04": "c",  # latin letter small capital c
    "\u1d05": "d",  # latin letter small capital d
    "\u1d07": "e",  # latin letter small capital e
    "\ua730": "f",  # latin letter small capital f
    "\u0262": "g",  # latin letter small capital g
    "\u029c": "h",  # latin letter small capital h
    "\u1d0a": "j",  # latin letter small capital j
    "\u1d0b": "k",  # latin letter small capital k
    "\u029f": "l",  # latin letter small capital l
    "\u1d0d": "m",  # latin letter small capital m
    "\u0274": "n",  # latin letter small capital n
    "\u1d0f": "o",  # latin letter small capital o
    "\u1d18": "p",  # latin letter small capital p
    "\u0280": "r",  # latin letter small capital r
    "\ua731": "s",  # latin letter small capital s
    "\u1d1b": "t",  # latin letter small capital t
    "\u1d1c": "u",  # latin letter small capital u
    "\u1d20": "v",  # latin letter small capital v
    "\u1d21": "w",  # latin letter small capital w
    "\u028f": "y",  # latin letter small capital y
    "\u1d22": "z",  # latin letter small capital z
    # Lisu (Fraser) letters
    "\ua4ee": "A",  # lisu letter a
    "\ua4d0": "B",  # lisu letter ba
    "\ua4da": "C",  # lisu letter ca
    "\ua4d3": "D",  # lisu letter da
    "\ua4f0": "E",  # lisu letter e
    "\ua4dd": "F",  # lisu letter tsa
    "\ua4d6": "G",  # lisu letter ga
    "\ua4e7": "H",  # lisu letter xa
    "\ua4f2": "I",  # lisu letter i
    "\ua4d9": "J",  # lisu letter ja
    "\ua4d7": "K",  # lisu letter ka
    "\ua4e1": "L",  # lisu letter la
    "\ua4df": "M",  # lisu letter ma
    "\ua4e0": "N",  # lisu letter na
    "\ua4f3": "O",  # lisu letter o
    "\ua4d1": "P",  # lisu letter pa
    "\ua4e3": "R",  # lisu letter zha
    "\ua4e2": "S",  # lisu letter sa
    "\ua4d4": "T",  # lisu letter ta
    "\ua4f4": "U",  # lisu letter u
    "\ua4e6": "V",  # lisu letter ha
    "\ua4ea": "W",  # lisu letter wa
    "\ua4eb": "X",  # lisu letter sha
    "\ua4ec": "Y",  # lisu letter ya
    "\ua4dc": "Z",  # lisu letter dza
    # Cherokee letters (case folding maps the small ones to these: `_plain` folds again)
    "\u13aa": "A",  # cherokee letter go
    "\u13f4": "B",  # cherokee letter yv
    "\u13df": "C",  # cherokee letter tli
    "\u13a0": "D",  # cherokee letter a
    "\u13ac": "E",  # cherokee letter gv
    "\u13c0": "G",  # cherokee letter nah
    "\u13bb": "H",  # cherokee letter mi
    "\u13a5": "i",  # cherokee letter v
    "\u13ab": "J",  # cherokee letter gu
    "\u13e6": "K",  # cherokee letter tso
    "\u13de": "L",  # cherokee letter tle
    "\u13b7": "M",  # cherokee letter lu
    "\u13e2": "P",  # cherokee letter tlv
    "\u13a1": "R",  # cherokee letter e
    "\u13da": "S",  # cherokee letter du
    "\u13d4": "T",  # cherokee letter ta
    "\u13d9": "V",  # cherokee letter do
    "\u13b3": "W",  # cherokee letter la
    "\u13c3": "Z",  # cherokee letter no
    # Coptic
    "\u2c80": "A",  # coptic capital letter alfa
    "\u2c82": "B",  # coptic capital letter vida
    "\u2ca4": "C",  # coptic capital letter sima
    "\u2c8e": "H",  # coptic capital letter hate
    "\u2c92": "I",  # coptic capital letter iauda
    "\u2c94": "K",  # coptic capital letter kapa
    "\u2c98": "M",  # coptic capital letter mi
    "\u2c9a": "N",  # coptic capital letter ni
    "\u2c9e": "O",  # coptic capital letter o
    "\u2ca2": "P",  # coptic capital letter ro
    "\u2ca6": "T",  # coptic capital letter tau
    "\u2ca8": "Y",  # coptic capital letter ua
    "\u2cac": "X",  # coptic capital letter khi
    "\u2ca5": "c",  # coptic small letter sima
    "\u2c93": "i",  # coptic small letter iauda
    "\u2c9f": "o",  # coptic small letter o
    "\u2ca3": "p",  # coptic small letter ro
    "\u2cad": "x",  # coptic small letter khi
}
