<?php
/**
 * One WHMCS request calling one module function, the way WHMCS does: $params in, the
 * function's return value out.
 *
 *   php call_module.php < spec.json
 *
 * spec: {"module": ".../provisioner.php", "function": "CreateAccount", "params": {...},
 *        "model": {...} | null, "model_dates": "string" | "carbon",
 *        "stub": {"log_file", "activity_file", "localapi_file", "db_file", "localapi"}}
 * "function" may also be "EventBuilder::build:<Function>" (the event a command would send,
 * without sending it) or "Connection::baseUrl" (the provisioner URL from the server fields).
 * Prints {"result": ...}. Every PHP warning, notice or deprecation goes to stderr (the
 * tests require none) and makes the exit status 3.
 */

$spec = json_decode((string) file_get_contents('php://stdin'), true, 512, JSON_THROW_ON_ERROR);

$GLOBALS['WHMCS_STUB'] = $spec['stub'];
$GLOBALS['WHMCS_STUB_PROBLEMS'] = 0;
error_reporting(E_ALL);
ini_set('display_errors', 'stderr');
set_error_handler(static function (int $severity, string $message, string $file, int $line): bool {
    $GLOBALS['WHMCS_STUB_PROBLEMS']++;
    fwrite(STDERR, "PHP problem ($severity): $message in $file:$line\n");
    return true;
});

require_once __DIR__ . '/whmcs_stubs.php';
require_once $spec['module'];

$params = $spec['params'];
if (array_key_exists('model', $spec) && is_array($spec['model'])) {
    $attributes = $spec['model'];
    if (($spec['model_dates'] ?? 'string') === 'carbon') {
        foreach (['nextduedate', 'regdate'] as $name) {
            if (isset($attributes[$name]) && $attributes[$name] !== '0000-00-00') {
                $attributes[$name] = new WhmcsStubCarbon($attributes[$name] . ' 00:00:00', new DateTimeZone('UTC'));
            }
        }
    }
    $params['model'] = new WhmcsStubModel($attributes);
}

$function = $spec['function'];
if (strncmp($function, 'EventBuilder::build:', 20) === 0) {
    try {
        $result = \WHMCS\Module\Server\Provisioner\EventBuilder::build(substr($function, 20), $params);
    } catch (\WHMCS\Module\Server\Provisioner\ConfigError $e) {
        $result = ['error' => $e->getMessage()];
    }
} elseif ($function === 'Connection::baseUrl') {
    try {
        $result = \WHMCS\Module\Server\Provisioner\Connection::baseUrl($params);
    } catch (\WHMCS\Module\Server\Provisioner\ConfigError $e) {
        $result = ['error' => $e->getMessage()];
    }
} else {
    $name = 'provisioner_' . $function;
    if (!function_exists($name)) {
        fwrite(STDERR, "no function $name\n");
        exit(2);
    }
    $result = $name($params);
}

echo json_encode(['result' => $result], JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION), "\n";
exit($GLOBALS['WHMCS_STUB_PROBLEMS'] ? 3 : 0);
