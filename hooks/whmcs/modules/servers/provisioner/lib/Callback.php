<?php
/**
 * The provisioner's callbacks to WHMCS (callback.php): job.succeeded, job.failed,
 * service.suspended, service.terminated, service.drift.
 *
 * A callback is accepted only with a Standard Webhooks signature made with the callback
 * secret of one of the provisioner servers (the server's Username field) and a timestamp
 * within TOLERANCE of this server's clock; it may act only on that server's services. A
 * webhook-id already handled is answered 200 without acting again. Any answer but 2xx makes
 * the provisioner deliver it again later, so a 500 is given only when WHMCS could not
 * record the outcome.
 */

namespace WHMCS\Module\Server\Provisioner;

final class Callback
{
    public const TOLERANCE = 300;
    public const MAX_BODY = 1048576;

    /**
     * @param array<string, string> $headers lower-case names
     * @return array{0: int, 1: array<string, mixed>} HTTP status and JSON answer
     */
    public static function handle(string $method, array $headers, string $body, ?int $now = null): array
    {
        $now = $now ?? time();
        if ($method !== 'POST') {
            return [405, ['error' => ['code' => 'method_not_allowed', 'message' => 'Callbacks are POSTed.']]];
        }
        if (strlen($body) > self::MAX_BODY) {
            return [413, ['error' => ['code' => 'too_large', 'message' => 'The body is larger than 1 MiB.']]];
        }
        $id = trim((string) ($headers['webhook-id'] ?? ''));
        $timestamp = trim((string) ($headers['webhook-timestamp'] ?? ''));
        $signature = trim((string) ($headers['webhook-signature'] ?? ''));
        if ($id === '' || $signature === '' || !preg_match('/^\d{1,12}$/', $timestamp)) {
            return [400, ['error' => ['code' => 'missing_headers', 'message' =>
                'webhook-id, webhook-timestamp and webhook-signature are required.']]];
        }
        if (abs($now - (int) $timestamp) > self::TOLERANCE) {
            return [401, ['error' => ['code' => 'stale_timestamp', 'message' =>
                'The webhook-timestamp is more than 5 minutes off this server\'s clock.']]];
        }
        $log = new ModuleLog();
        $connection = null;
        $serverId = 0;
        foreach (WhmcsData::servers() as $server) {
            try {
                $candidate = Connection::fromParams($server, $log);
            } catch (ConfigError $e) {
                continue;
            }
            if ($candidate->verifyCallback($id, (int) $timestamp, $signature, $body)) {
                $connection = $candidate;
                $serverId = (int) $server['serverid'];
                break;
            }
        }
        if ($connection === null) {
            $log->call('Callback', 'webhook-id ' . $id, 'refused: no provisioner server\'s callback secret (Username) '
                . 'verifies the signature');
            return [401, ['error' => ['code' => 'invalid_signature', 'message' =>
                'No valid signature: the callback secret of this WHMCS\'s billing source must be the Username of its '
                . 'provisioner server.']]];
        }
        if (Store::callbackSeen($id)) {
            return [200, ['ok' => true, 'duplicate' => true]];
        }
        $payload = json_decode($body, true);
        if (!is_array($payload) || !is_string($payload['type'] ?? null)) {
            return [400, ['error' => ['code' => 'malformed_json', 'message' => 'The body must be a JSON object with a '
                . 'type.']]];
        }
        $type = $payload['type'];
        $serviceId = (string) ($payload['service_id'] ?? '');
        $data = is_array($payload['data'] ?? null) ? $payload['data'] : [];
        $log->call('Callback', ['webhook-id' => $id, 'type' => $type, 'service' => $serviceId], $body);

        $hosting = WhmcsData::service($serviceId);
        if ($hosting === null || (int) ($hosting->server ?? 0) !== $serverId) {
            // Not this server's service: its secret says nothing about any other one.
            Store::rememberCallback($id);
            WhmcsData::activity(sprintf('provisioner: callback %s (%s) for service %s ignored: not a service of '
                . 'provisioner server #%d', $id, $type, $serviceId !== '' ? '#' . $serviceId : '(none)', $serverId));
            return [200, ['ok' => true, 'ignored' => 'not a service of this server']];
        }
        if ($type === 'job.succeeded' || $type === 'job.failed') {
            $job = [
                'id' => (string) ($data['job_id'] ?? ''),
                'state' => (string) ($data['state'] ?? ($type === 'job.failed' ? 'failed' : 'succeeded')),
                'event_type' => isset($data['event_type']) ? (string) $data['event_type'] : null,
                'webhook_id' => isset($data['webhook_id']) ? (string) $data['webhook_id'] : null,
                'message' => (string) ($data['message'] ?? ''),
                'attempts' => (int) ($data['attempts'] ?? 0),
            ];
            if ($job['id'] === '') {
                return [400, ['error' => ['code' => 'invalid_payload', 'message' => 'data.job_id is missing.']]];
            }
            $done = Outcomes::apply($job, $serviceId, $connection, 'callback');
            if ($done === 'deferred') {
                return [503, ['error' => ['code' => 'answer_pending', 'message' =>
                    'The command this job belongs to is still being answered; deliver this again shortly.']]];
            }
        } elseif ($type === 'service.suspended' || $type === 'service.terminated') {
            // The provisioner acted by itself (its scheduler, or an operator): WHMCS's admins decide what billing does.
            $what = $type === 'service.suspended' ? 'suspended' : 'terminated';
            $why = trim((string) ($data['reason'] ?? ''));
            WhmcsData::addTodo(sprintf('Provisioner: service #%s was %s at the provider', $serviceId, $what),
                sprintf("The provisioner %s service #%s%s%s.\n\nWHMCS still shows it as %s: bring billing level if "
                    . 'this is right, or ask the provisioner\'s operator.', $what, $serviceId,
                    isset($data['by']) ? ' (by ' . (string) $data['by'] . ')' : '', $why !== '' ? ': ' . $why : '',
                    (string) ($hosting->domainstatus ?? 'unknown')));
            $done = 'to-do opened';
        } elseif ($type === 'service.drift') {
            $kinds = is_array($data['kinds'] ?? null) ? implode(', ', array_map('strval', $data['kinds'])) : '';
            WhmcsData::activity(sprintf('provisioner: service #%s drifted at the provider (%s); the provisioner '
                . 'converges it back', $serviceId, $kinds !== '' ? $kinds : 'unspecified'));
            $done = 'logged';
        } else {
            $done = 'ignored';           // a newer callback type: accepted, nothing to do here
        }
        Store::rememberCallback($id);
        return [200, ['ok' => true, 'done' => $done]];
    }

    /** The request's headers with lower-case names (getallheaders() or $_SERVER). */
    public static function requestHeaders(array $server): array
    {
        $headers = [];
        if (function_exists('getallheaders')) {
            foreach ((array) getallheaders() as $name => $value) {
                $headers[strtolower((string) $name)] = (string) $value;
            }
        }
        foreach ($server as $key => $value) {
            if (strncmp((string) $key, 'HTTP_', 5) === 0) {
                $name = strtolower(str_replace('_', '-', substr((string) $key, 5)));
                $headers[$name] = $headers[$name] ?? (string) $value;
            }
        }
        return $headers;
    }
}
