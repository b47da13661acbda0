# -*- test-case-name: tests.test_config_lexer -*-
"""
Tests for L{ikedtx.config.lexer}: how iked.conf text becomes tokens.
"""

import os

from twisted.trial.unittest import SynchronousTestCase

from ikedtx.config import ConfigError, parseConfig
from ikedtx.config.lexer import Lexer


def lex(text, macros=None, defines=None):
    """
    All tokens of C{text} as (kind, value, line), and the errors.
    """
    errors = []
    lexer = Lexer(lambda f, line, message: errors.append((line, message)))
    for name, value in (defines or {}).items():
        lexer.define(name, value, persistent=True)
    for name, value in (macros or {}).items():
        lexer.define(name, value)
    lexer.pushFile("test.conf", text.encode())
    tokens = []
    while True:
        token = lexer.token()
        if token.kind == "EOF":
            break
        tokens.append((token.kind, token.value, token.line))
    return tokens, errors


def kinds(text, **kw):
    return [(k, v) for k, v, _ in lex(text, **kw)[0]]


class TokenTests(SynchronousTestCase):
    """
    Words, numbers, punctuation and keywords.
    """

    def test_keywordsAndStrings(self):
        """
        Reserved words are keyword tokens; other words are strings.
        """
        self.assertEqual(
            kinds("ikev2 esp foo"),
            [("IKEV2", None), ("ESP", None), ("STRING", "foo"), ("\n", None)],
        )

    def test_numbers(self):
        """
        Digits ended by a space or one of C{) , / } =} are a number, even
        negative; digits followed by anything else start a word.
        """
        self.assertEqual(
            kinds("10 -5 10/8 3des 10.0.0.1 1h"),
            [
                ("NUMBER", 10),
                ("NUMBER", -5),
                ("NUMBER", 10),
                ("/", None),
                ("NUMBER", 8),
                ("STRING", "3des"),
                ("STRING", "10.0.0.1"),
                ("STRING", "1h"),
                ("\n", None),
            ],
        )

    def test_minusAlone(self):
        """
        A minus sign that starts no number is a token of its own.
        """
        self.assertEqual(kinds("-x"), [("-", None), ("STRING", "x"), ("\n", None)])

    def test_numberTooLarge(self):
        """
        A number beyond 64 bits is an error, like strtonum's, and the rest of
        the line is skipped.
        """
        tokens, errors = lex("99999999999999999999 more\nnext")
        self.assertEqual([t[0] for t in tokens], ["ERROR", "STRING", "\n"])
        self.assertEqual(errors, [(1, '"99999999999999999999" invalid number: too large')])

    def test_stringCharacters(self):
        """
        Words hold letters, digits and most punctuation, but not
        C{( ) { } < > ! = / # ,}.
        """
        self.assertEqual(
            kinds("a-b.c@d:e_f*g$h%i a(b)c{d}e,f=g"),
            [
                ("STRING", "a-b.c@d:e_f*g$h%i"),
                ("STRING", "a"),
                ("(", None),
                ("STRING", "b"),
                (")", None),
                ("STRING", "c"),
                ("{", None),
                ("STRING", "d"),
                ("}", None),
                ("STRING", "e"),
                (",", None),
                ("STRING", "f"),
                ("=", None),
                ("STRING", "g"),
                ("\n", None),
            ],
        )

    def test_lastLineWithoutNewline(self):
        """
        The end of the file reads as a newline, so a last line without one
        still ends.
        """
        self.assertEqual(kinds("set passive"), [("SET", None), ("PASSIVE", None), ("\n", None)])

    def test_lineNumbers(self):
        """
        Each token knows its line.
        """
        tokens, _ = lex("a\n\nb\n")
        self.assertEqual([(k, line) for k, _, line in tokens], [("STRING", 1), ("\n", 1), ("\n", 2), ("STRING", 3), ("\n", 3), ("\n", 4)])


class QuotingTests(SynchronousTestCase):
    """
    Quoted strings.
    """

    def test_quotedKeyword(self):
        """
        A quoted word is a string, never a keyword.
        """
        self.assertEqual(kinds('"esp" \'from\''), [("STRING", "esp"), ("STRING", "from"), ("\n", None)])

    def test_spacesAndPunctuation(self):
        """
        Quotes keep spaces and any punctuation in one string.
        """
        self.assertEqual(kinds('"a b,c=d/e#f"'), [("STRING", "a b,c=d/e#f"), ("\n", None)])

    def test_escapes(self):
        """
        Inside quotes a backslash escapes the quote, a space or a tab; before
        anything else it is kept.
        """
        self.assertEqual(kinds(r'"a\"b" "c\ d" "e\nf"'), [("STRING", 'a"b'), ("STRING", "c d"), ("STRING", r"e\nf"), ("\n", None)])

    def test_newlineInQuotes(self):
        """
        A newline inside quotes is dropped (and counted); a continued line
        joins without it.
        """
        tokens, _ = lex('"ab\ncd" x\n"ef\\\ngh" y')
        self.assertEqual(
            [(k, v, line) for k, v, line in tokens],
            [("STRING", "abcd", 1), ("STRING", "x", 2), ("\n", None, 2), ("STRING", "efgh", 3), ("STRING", "y", 4), ("\n", None, 4)],
        )

    def test_unterminated(self):
        """
        A quote left open at the end of the file is an error.
        """
        tokens, errors = lex('tag "open')
        self.assertEqual(errors, [(1, "reached end of file while parsing quoted string")])

    def test_macrosNotExpandedInQuotes(self):
        """
        C{$name} inside quotes stays as written.
        """
        self.assertEqual(kinds('"$gw"', macros={"gw": "1.2.3.4"}), [("STRING", "$gw"), ("\n", None)])

    def test_utf8(self):
        """
        UTF-8 text in quotes comes out as text.
        """
        self.assertEqual(kinds('"caf\u00e9"'), [("STRING", "caf\u00e9"), ("\n", None)])


class CommentAndContinuationTests(SynchronousTestCase):
    """
    C{#} comments and C{\\} continuation lines.
    """

    def test_comment(self):
        """
        C{#} at the start of a token comments out the rest of the line, also
        right after a word.
        """
        self.assertEqual(kinds("a # b c\nd#e"), [("STRING", "a"), ("\n", None), ("STRING", "d"), ("\n", None)])

    def test_commentContinued(self):
        """
        A comment that ends with a backslash goes on on the next line.
        """
        self.assertEqual(kinds("# a \\\nb\nc"), [("\n", None), ("STRING", "c"), ("\n", None)])

    def test_continuation(self):
        """
        A backslash before the newline joins the lines; tokens keep their
        own line numbers.
        """
        tokens, _ = lex("a \\\n  b\nc")
        self.assertEqual([(k, v, line) for k, v, line in tokens], [("STRING", "a", 1), ("STRING", "b", 2), ("\n", None, 2), ("STRING", "c", 3), ("\n", None, 3)])

    def test_backslashElsewhere(self):
        """
        Outside quotes a backslash before another character is dropped.
        """
        self.assertEqual(kinds("a\\b"), [("STRING", "ab"), ("\n", None)])


class MacroTests(SynchronousTestCase):
    """
    C{$name} expansion.
    """

    def test_expand(self):
        """
        A macro's value is lexed again: it may hold several tokens and
        keywords.
        """
        self.assertEqual(
            kinds("ikev2 $x", macros={"x": "esp from 1.2.3.4"}),
            [("IKEV2", None), ("ESP", None), ("FROM", None), ("STRING", "1.2.3.4"), ("\n", None)],
        )

    def test_nameEndsAtPunctuation(self):
        """
        A macro name is letters, digits and underscores.
        """
        self.assertEqual(kinds("$a_1-b", macros={"a_1": "x"}), [("STRING", "x-b"), ("\n", None)])

    def test_undefined(self):
        """
        An undefined macro is an error and the rest of its line is skipped.
        """
        tokens, errors = lex("from $nope to x\nnext")
        self.assertEqual(errors, [(1, "macro 'nope' not defined")])
        self.assertEqual([t[0] for t in tokens], ["FROM", "ERROR", "STRING", "\n"])

    def test_notRecursive(self):
        """
        A macro's value is not expanded again: a C{$} in it is a lone token.
        """
        self.assertEqual(kinds("$a", macros={"a": "$b", "b": "x"}), [("$", None), ("STRING", "b"), ("\n", None)])

    def test_onlyAtTokenStart(self):
        """
        C{$} inside a word is part of the word (iked's tag variables).
        """
        self.assertEqual(kinds("ipsec-$domain", macros={"domain": "x"}), [("STRING", "ipsec-$domain"), ("\n", None)])

    def test_definesPersist(self):
        """
        A command line definition (C{-D}) wins over the file's.
        """
        errors = []
        lexer = Lexer(lambda *a: errors.append(a))
        lexer.define("gw", "1.1.1.1", persistent=True)
        lexer.define("gw", "2.2.2.2")
        self.assertEqual(lexer.macros["gw"], "1.1.1.1")


class FileTests(SynchronousTestCase):
    """
    C{include} through the parser: files, loops, missing files.
    """

    def setUp(self):
        self.dir = self.mktemp()
        os.makedirs(self.dir)

    def write(self, name, text, mode=0o600):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def test_include(self):
        """
        An included file's statements come in place of the include, its
        macros stay defined after it, and its lines count from 1.
        """
        inc = self.write("inc.conf", 'gw = "10.0.0.2"\nikev2 "inner" esp from 10.0.0.1 to $gw\n')
        config = parseConfig('include "%s"\nikev2 "outer" esp from 10.0.0.3 to $gw\n' % (inc,))
        self.assertEqual([p.name for p in config.policies], ["inner", "outer"])
        self.assertEqual([(p.filename, p.line) for p in config.policies], [(inc, 2), ("<string>", 2)])

    def test_errorInIncludedFile(self):
        """
        Errors in an included file name that file and its line.
        """
        inc = self.write("inc.conf", "\nbogus line\n")
        e = self.assertRaises(ConfigError, parseConfig, 'include "%s"\n' % (inc,))
        self.assertEqual([str(p) for p in e.errors], ['%s: 2: syntax error at "line"' % (inc,)])

    def test_missingFile(self):
        """
        A missing included file is an error on the include line.
        """
        path = os.path.join(self.dir, "missing.conf")
        e = self.assertRaises(ConfigError, parseConfig, '\ninclude "%s"\n' % (path,))
        self.assertEqual(
            [str(p) for p in e.errors],
            ["<string>: 2: failed to include file %s (No such file or directory)" % (path,)],
        )

    def test_loop(self):
        """
        A file that includes itself (here through another) is refused.
        """
        a = os.path.join(self.dir, "a.conf")
        b = self.write("b.conf", 'include "%s"\n' % (a,))
        self.write("a.conf", 'include "%s"\n' % (b,))
        e = self.assertRaises(ConfigError, parseConfig, 'include "%s"\n' % (a,))
        self.assertEqual([str(p) for p in e.errors], ["%s: 1: failed to include file %s (include loop)" % (b, a)])

    def test_unsafeInclude(self):
        """
        With permission checks on, an included file others can read is
        refused.
        """
        inc = self.write("inc.conf", "set passive\n", mode=0o644)
        e = self.assertRaises(ConfigError, parseConfig, 'include "%s"\n' % (inc,), checkPermissions=True)
        self.assertEqual(
            [str(p) for p in e.errors],
            ["<string>: 1: failed to include file %s (group writable or world read/writable)" % (inc,)],
        )
