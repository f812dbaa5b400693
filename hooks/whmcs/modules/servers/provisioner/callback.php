<?php
/**
 * provisioner — the callback receiver: the provisioner POSTs how jobs ended here
 * (billing.yaml callback_url: https://<whmcs>/modules/servers/provisioner/callback.php).
 *
 * It boots WHMCS (init.php, three folders up, as payment gateway callbacks do), so the
 * module works through WHMCS's own functions; see lib/Callback.php and lib/Outcomes.php.
 */

require_once __DIR__ . '/../../../init.php';
require_once __DIR__ . '/lib/bootstrap.php';

use WHMCS\Module\Server\Provisioner\Callback;

$body = (string) file_get_contents('php://input', false, null, 0, Callback::MAX_BODY + 1);
try {
    [$status, $answer] = Callback::handle((string) ($_SERVER['REQUEST_METHOD'] ?? 'GET'),
        Callback::requestHeaders($_SERVER), $body);
} catch (\Throwable $e) {
    // WHMCS could not record it: the provisioner delivers it again later.
    if (function_exists('logModuleCall')) {
        logModuleCall('provisioner', 'Callback', '', get_class($e) . ': ' . $e->getMessage(), '', []);
    }
    [$status, $answer] = [500, ['error' => ['code' => 'not_recorded', 'message' =>
        'WHMCS could not record the callback; deliver it again later.']]];
}
http_response_code($status);
header('Content-Type: application/json');
header('Cache-Control: no-store');
echo json_encode($answer, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE);
