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
 * without sending it), "Connection::baseUrl" (the provisioner URL from the server fields),
 * "hook:<HookPoint>" (hooks.php's callbacks for that hook point with "params" as $vars,
 * "post" as $_POST; ClientAreaPrimarySidebar gets a sidebar with WHMCS's two service
 * panels, "menu_context" as Menu::context) or "MetricProvider:<method>" (metrics, usage,
 * tenantUsage with params.tenant). "area": "admin" defines ADMINAREA, as WHMCS's admin
 * pages do. A lifecycle command's result is applied to tblhosting as WHMCS would.
 * Prints {"result": ...}. Every PHP warning, notice or deprecation goes to stderr (the
 * tests require none) and makes the exit status 3.
 */

$spec = json_decode((string) file_get_contents('php://stdin'), true, 512, JSON_THROW_ON_ERROR);

$GLOBALS['WHMCS_STUB'] = $spec['stub'] + ['module' => $spec['module']];
if (($spec['area'] ?? 'client') === 'admin') {
    define('ADMINAREA', true);
}
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
} elseif (strncmp($function, 'hook:', 5) === 0) {
    require_once dirname($spec['module']) . '/hooks.php';
    $hook = substr($function, 5);
    $_POST = is_array($spec['post'] ?? null) ? $spec['post'] : [];
    Menu::$context = is_array($spec['menu_context'] ?? null) ? $spec['menu_context'] : [];
    if ($hook === 'ClientAreaPrimarySidebar') {
        $sidebar = new \WHMCS\View\Menu\Item('Primary Sidebar');
        $sidebar->addChild('Service Details Overview');
        $sidebar->addChild('Service Details Actions');
        whmcs_stub_run_hook($hook, $sidebar);
        $result = $sidebar->toArray();
    } else {
        $result = whmcs_stub_run_hook($hook, $params);
    }
} elseif (strncmp($function, 'MetricProvider:', 15) === 0) {
    $provider = provisioner_MetricProvider($params);
    $method = substr($function, 15);
    $answer = $method === 'tenantUsage' ? $provider->tenantUsage($params['tenant']) : $provider->{$method}();
    $flatten = static fn (array $metrics) => array_map(static fn ($m) => $m->toArray(), $metrics);
    $result = $method === 'usage' ? array_map($flatten, $answer) : $flatten($answer);
} else {
    $name = 'provisioner_' . $function;
    if (!function_exists($name)) {
        fwrite(STDERR, "no function $name\n");
        exit(2);
    }
    $result = $name($params);
    if (in_array($function, ['CreateAccount', 'SuspendAccount', 'UnsuspendAccount', 'TerminateAccount',
        'ChangePackage', 'ChangePassword', 'Renew'], true)) {
        whmcs_stub_after_command($function, $params, $result);
    }
}

echo json_encode(['result' => $result], JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION), "\n";
exit($GLOBALS['WHMCS_STUB_PROBLEMS'] ? 3 : 0);
