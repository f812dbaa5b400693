<?php
/**
 * The module's words for customers, in the client's language: lang/<language>.php, as
 * WHMCS names its languages ("english", "german", ...), each setting $_LANG['provisioner_*'].
 * A string missing from a language falls back to English.
 */

namespace WHMCS\Module\Server\Provisioner;

final class Lang
{
    public const FALLBACK = 'english';

    /** @var array<string, array<string, string>> */
    private static array $loaded = [];

    /** The language for this request: the client's own, else WHMCS's default, else English. */
    public static function language(array $params = []): string
    {
        $candidates = [
            $params['clientsdetails']['language'] ?? null,
            $_SESSION['Language'] ?? null,
            $GLOBALS['CONFIG']['Language'] ?? null,
        ];
        foreach ($candidates as $language) {
            $language = strtolower(trim((string) $language));
            if ($language !== '' && preg_match('/^[a-z_-]{2,32}$/', $language)
                && is_file(self::file($language))) {
                return $language;
            }
        }
        return self::FALLBACK;
    }

    /** @return array<string, string> every string of the language, English where it has none */
    public static function strings(string $language): array
    {
        return self::load($language) + self::load(self::FALLBACK);
    }

    /** One string, with sprintf arguments. */
    public static function get(string $key, array $params = [], ...$args): string
    {
        $strings = self::strings(self::language($params));
        $text = $strings[$key] ?? $key;
        return $args ? vsprintf($text, $args) : $text;
    }

    private static function file(string $language): string
    {
        return dirname(__DIR__) . '/lang/' . $language . '.php';
    }

    /** @return array<string, string> */
    private static function load(string $language): array
    {
        if (!isset(self::$loaded[$language])) {
            $file = self::file($language);
            self::$loaded[$language] = is_file($file) ? (static function (string $file): array {
                $_LANG = [];
                include $file;
                return array_map('strval', $_LANG);
            })($file) : [];
        }
        return self::$loaded[$language];
    }
}
