<?php
/**
 * A WHMCS root's init.php for the callback receiver under test (php -S serves the module's
 * callback.php from a copy of the module in a temporary WHMCS root). It loads the same
 * stand-ins as call_module.php, configured by stub.json next to it (written by each test),
 * and records any PHP warning in problems.log.
 */

$GLOBALS['WHMCS_STUB'] = json_decode((string) file_get_contents(__DIR__ . '/stub.json'), true, 512, JSON_THROW_ON_ERROR);
error_reporting(E_ALL);
set_error_handler(static function (int $severity, string $message, string $file, int $line): bool {
    file_put_contents(__DIR__ . '/problems.log', "PHP problem ($severity): $message in $file:$line\n", FILE_APPEND);
    return true;
});
require_once $GLOBALS['WHMCS_STUB']['stubs'];
