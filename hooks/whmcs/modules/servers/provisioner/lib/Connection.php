<?php
/**
 * HTTP to the provisioner: signed lifecycle events (Standard Webhooks) and the admin API.
 *
 * Server settings (Setup > Products/Services > Servers):
 *   Hostname     the provisioner's URL: "provisioner.example.net", "provisioner.example.net:8443",
 *                "https://provisioner.example.net/base" (a full URL wins over the SSL checkbox
 *                and the port field)
 *   Secure (SSL) https when the hostname has no scheme
 *   Port         used when overridden and the hostname carries none
 *   Password     a webhook secret "whsec_..." of this WHMCS's billing source at the provisioner
 *                (billing.yaml webhook_secrets, or PROVISIONER_WEBHOOK_SECRETS)
 *   Access Hash  an admin API key, scoped to that source
 *                (provisioner api-key create whmcs --scope admin --source <name>)
 *   Username     the source's callback secret "whsec_..." (billing.yaml callback_secret):
 *                callback.php accepts callbacks signed with it; empty: no callbacks, the
 *                cron catch-up alone brings outcomes in
 *
 * Only PHP's curl extension is used.
 */

namespace WHMCS\Module\Server\Provisioner;

final class ConfigError extends \RuntimeException
{
}

final class HttpResult
{
    public int $status = 0;          // 0: no HTTP answer at all
    public string $body = '';
    /** @var mixed */
    public $json = null;
    public int $errno = 0;
    public string $error = '';
    public int $attempts = 1;

    public function networkError(): bool
    {
        return $this->status === 0;
    }

    public function retryable(): bool
    {
        return $this->status === 0 || $this->status >= 500 || $this->status === 429;
    }

    public function errorCode(): string
    {
        return is_array($this->json) && is_array($this->json['error'] ?? null)
            ? (string) ($this->json['error']['code'] ?? '') : '';
    }

    public function errorMessage(): string
    {
        return is_array($this->json) && is_array($this->json['error'] ?? null)
            ? trim((string) ($this->json['error']['message'] ?? '')) : '';
    }

    /** @return array<string, string> */
    public function errorFields(): array
    {
        $fields = is_array($this->json) && is_array($this->json['error'] ?? null)
            ? ($this->json['error']['fields'] ?? []) : [];
        return is_array($fields) ? array_map('strval', $fields) : [];
    }

    /** What went wrong in one line (no secrets: bodies are the provisioner's safe messages). */
    public function describe(): string
    {
        if ($this->networkError()) {
            return $this->error !== '' ? $this->error : 'no answer';
        }
        $message = $this->errorMessage();
        return 'HTTP ' . $this->status . ($message !== '' ? ': ' . $message : '');
    }
}

final class Connection
{
    public const USER_AGENT = 'provisioner-whmcs/1.0';
    public const EVENT_ATTEMPTS = 3;
    /** seconds slept before the 2nd and 3rd attempt of one call */
    public const RETRY_DELAYS = [1, 2];
    /** seconds one module call may spend on one event, every attempt and pause included */
    public const TIME_BUDGET = 30;
    /** seconds an attempt is given beyond the provisioner's wait to answer */
    public const ANSWER_MARGIN = 5;
    public const CONNECT_TIMEOUT = 10;
    public const API_TIMEOUT = 20;
    /** seconds a customer's page may wait for the provisioner (client area) */
    public const PAGE_TIMEOUT = 8;

    private string $baseUrl;
    private string $webhookSecret;
    private string $signingKey;
    private string $apiKey;
    private string $callbackKey;
    private ModuleLog $log;

    private function __construct(string $baseUrl, string $webhookSecret, string $signingKey, string $apiKey,
                                 string $callbackKey, ModuleLog $log)
    {
        $this->baseUrl = $baseUrl;
        $this->webhookSecret = $webhookSecret;
        $this->signingKey = $signingKey;
        $this->apiKey = $apiKey;
        $this->callbackKey = $callbackKey;
        $this->log = $log;
    }

    /** The key of a "whsec_..." secret, or null when it is not one. */
    public static function secretKey(string $secret): ?string
    {
        if (strncmp($secret, 'whsec_', 6) !== 0) {
            return null;
        }
        $key = base64_decode(substr($secret, 6), true);
        return $key === false || $key === '' ? null : $key;
    }

    /** @throws ConfigError with a sentence for the admin */
    public static function fromParams(array $params, ModuleLog $log): self
    {
        $secret = trim((string) ($params['serverpassword'] ?? ''));
        $apiKey = trim((string) ($params['serveraccesshash'] ?? ''));
        $callback = trim((string) ($params['serverusername'] ?? ''));
        // Mask before anything can be logged, even when the settings are wrong.
        $log->addSecrets([$secret, $apiKey]);
        $callbackKey = self::secretKey($callback) ?? '';
        if ($callbackKey !== '') {
            $log->addSecrets([$callback, substr($callback, 6)]);
        }
        $baseUrl = self::baseUrl($params);
        if ($secret === '') {
            throw new ConfigError('The server has no Password: enter one of the provisioner\'s webhook secrets '
                . '(whsec_..., from PROVISIONER_WEBHOOK_SECRETS) as the server\'s Password.');
        }
        if (strncmp($secret, 'whsec_', 6) !== 0) {
            throw new ConfigError('The server\'s Password is not a webhook secret: it must start with "whsec_" '
                . '(one of the provisioner\'s PROVISIONER_WEBHOOK_SECRETS).');
        }
        $key = base64_decode(substr($secret, 6), true);
        if ($key === false || $key === '') {
            throw new ConfigError('The server\'s Password is not a valid webhook secret: the part after "whsec_" '
                . 'must be base64.');
        }
        $log->addSecrets([substr($secret, 6)]);
        return new self($baseUrl, $secret, $key, $apiKey, $callbackKey, $log);
    }

    /** The provisioner's base URL from the server's hostname, SSL checkbox and port. */
    public static function baseUrl(array $params): string
    {
        $host = trim((string) ($params['serverhostname'] ?? ''));
        if ($host === '') {
            $host = trim((string) ($params['serverip'] ?? ''));
        }
        if ($host === '') {
            throw new ConfigError('The server has no Hostname: enter the provisioner\'s URL, e.g. '
                . 'https://provisioner.example.net, as the server\'s Hostname.');
        }
        if (preg_match('~^https?://~i', $host)) {
            return rtrim($host, '/');
        }
        $secure = $params['serversecure'] ?? false;
        $secure = $secure === true || in_array(strtolower(trim((string) $secure)), ['on', '1', 'true', 'yes'], true);
        $scheme = $secure ? 'https' : 'http';
        [$authority, $path] = array_pad(explode('/', $host, 2), 2, '');
        $port = trim((string) ($params['serverport'] ?? ''));
        $defaultPort = $secure ? '443' : '80';
        if ($port !== '' && preg_match('/^\d+$/', $port) && $port !== $defaultPort && !preg_match('~:\d+$~', $authority)) {
            $authority .= ':' . $port;
        }
        return rtrim($scheme . '://' . $authority . ($path !== '' ? '/' . $path : ''), '/');
    }

    public function url(string $path = ''): string
    {
        return $this->baseUrl . $path;
    }

    public function signingKey(): string
    {
        return $this->signingKey;
    }

    public function hasApiKey(): bool
    {
        return $this->apiKey !== '';
    }

    public function log(): ModuleLog
    {
        return $this->log;
    }

    /** Standard Webhooks: base64 HMAC-SHA256 over "{id}.{timestamp}.{body}". */
    public function sign(string $webhookId, int $timestamp, string $body): string
    {
        return self::signWith($this->signingKey, $webhookId, $timestamp, $body);
    }

    public static function signWith(string $key, string $webhookId, int $timestamp, string $body): string
    {
        return 'v1,' . base64_encode(hash_hmac('sha256', $webhookId . '.' . $timestamp . '.' . $body, $key, true));
    }

    public function acceptsCallbacks(): bool
    {
        return $this->callbackKey !== '';
    }

    /**
     * A callback's Standard Webhooks signature made with the server's callback secret. The
     * header may list several signatures (the provisioner rotating secrets): any one counts.
     */
    public function verifyCallback(string $webhookId, int $timestamp, string $signatures, string $body): bool
    {
        if ($this->callbackKey === '') {
            return false;
        }
        $expected = self::signWith($this->callbackKey, $webhookId, $timestamp, $body);
        foreach (preg_split('/\s+/', trim($signatures)) ?: [] as $candidate) {
            if ($candidate !== '' && hash_equals($expected, $candidate)) {
                return true;
            }
        }
        return false;
    }

    /**
     * POST one lifecycle event; network errors, 5xx and 429 are sent again, a couple of
     * times, with the same webhook-id and body (the provisioner answers a repeat with the
     * original job). Each attempt is signed with a fresh timestamp. All attempts together,
     * their waits and the pauses between them stay within TIME_BUDGET: a create may run
     * inside the customer's checkout, behind a proxy that gives up after 30-60 s.
     */
    public function sendEvent(string $action, string $body, string $webhookId, int $wait,
                              int $attempts = self::EVENT_ATTEMPTS): HttpResult
    {
        $deadline = microtime(true) + self::TIME_BUDGET;
        for ($attempt = 1; ; $attempt++) {
            $left = (int) round($deadline - microtime(true));
            // The provisioner answers within its wait; ANSWER_MARGIN covers the request itself.
            $attemptWait = max(0, min($wait, $left - self::ANSWER_MARGIN));
            $timestamp = time();
            $headers = $this->eventHeaders($webhookId, $timestamp, $body);
            if ($attemptWait > 0) {
                $headers[] = 'Prefer: wait=' . $attemptWait;
            }
            $result = $this->http('POST', '/hooks/v1/events', $headers, $body,
                max(1, min($left, $attemptWait + self::ANSWER_MARGIN)));
            $result->attempts = $attempt;
            $this->logCall($action, 'POST', '/hooks/v1/events', $body, $result,
                ['webhook-id' => $webhookId, 'webhook-timestamp' => $timestamp,
                 'Prefer' => $attemptWait > 0 ? 'wait=' . $attemptWait : null,
                 'attempt' => $attempt . ' of ' . $attempts]);
            if (!$result->retryable() || $attempt >= $attempts) {
                return $result;
            }
            $delay = self::RETRY_DELAYS[min($attempt - 1, count(self::RETRY_DELAYS) - 1)];
            // Another attempt only if it still has time to get an answer.
            if (microtime(true) + $delay + self::ANSWER_MARGIN > $deadline) {
                return $result;
            }
            sleep($delay);
        }
    }

    /** @return list<string> the headers of a signed event (Standard Webhooks) */
    private function eventHeaders(string $webhookId, int $timestamp, string $body): array
    {
        return [
            'Content-Type: application/json',
            'Accept: application/json',
            'webhook-id: ' . $webhookId,
            'webhook-timestamp: ' . $timestamp,
            'webhook-signature: ' . $this->sign($webhookId, $timestamp, $body),
        ];
    }

    /**
     * POST /hooks/v1/events/validate: what the provisioner would answer for this event,
     * signed like one, without storing anything or using up the webhook-id.
     */
    public function validateEvent(string $action, string $body, string $webhookId, int $timeout): HttpResult
    {
        $headers = $this->eventHeaders($webhookId, time(), $body);
        $result = $this->http('POST', '/hooks/v1/events/validate', $headers, $body, $timeout);
        $this->logCall($action, 'POST', '/hooks/v1/events/validate', $body, $result, ['webhook-id' => $webhookId]);
        return $result;
    }

    /** One admin API call with the API key (Authorization: Bearer). */
    public function api(string $action, string $method, string $path, ?string $body = null,
                        int $timeout = self::API_TIMEOUT): HttpResult
    {
        if ($this->apiKey === '') {
            $result = new HttpResult();
            $result->status = 401;
            $result->json = ['error' => ['code' => 'no_api_key', 'message' =>
                'The server has no Access Hash: enter an admin API key of the provisioner as the server\'s Access Hash.']];
            return $result;
        }
        $headers = ['Accept: application/json', 'Authorization: Bearer ' . $this->apiKey];
        if ($body !== null) {
            $headers[] = 'Content-Type: application/json';
        }
        $result = $this->http($method, $path, $headers, $body ?? ($method === 'POST' ? '' : null), $timeout);
        $this->logCall($action, $method, $path, $body ?? '', $result, []);
        return $result;
    }

    /** A GET without credentials (health checks). */
    public function anonymous(string $action, string $path): HttpResult
    {
        $result = $this->http('GET', $path, ['Accept: application/json'], null, self::API_TIMEOUT);
        $this->logCall($action, 'GET', $path, '', $result, []);
        return $result;
    }

    /** @param list<string> $headers */
    private function http(string $method, string $path, array $headers, ?string $body, int $timeout): HttpResult
    {
        $result = new HttpResult();
        if (!function_exists('curl_init')) {
            $result->error = 'the PHP curl extension is not installed';
            return $result;
        }
        $handle = curl_init($this->baseUrl . $path);
        $headers[] = 'Expect:';
        curl_setopt_array($handle, [
            CURLOPT_CUSTOMREQUEST => $method,
            CURLOPT_RETURNTRANSFER => true,
            CURLOPT_HTTPHEADER => $headers,
            CURLOPT_CONNECTTIMEOUT => min(self::CONNECT_TIMEOUT, $timeout),
            CURLOPT_TIMEOUT => $timeout,
            CURLOPT_FOLLOWLOCATION => false,
            CURLOPT_USERAGENT => self::USER_AGENT,
            CURLOPT_SSL_VERIFYPEER => true,
            CURLOPT_SSL_VERIFYHOST => 2,
        ]);
        if ($body !== null) {
            curl_setopt($handle, CURLOPT_POSTFIELDS, $body);
        }
        $raw = curl_exec($handle);
        $result->errno = curl_errno($handle);
        $result->error = $result->errno ? curl_error($handle) : '';
        $result->status = $result->errno ? 0 : (int) curl_getinfo($handle, CURLINFO_RESPONSE_CODE);
        curl_close($handle);
        $result->body = is_string($raw) ? $raw : '';
        if ($result->body !== '') {
            $decoded = json_decode($result->body, true);
            $result->json = is_array($decoded) ? $decoded : null;
        }
        return $result;
    }

    /** @param array<string, mixed> $meta */
    private function logCall(string $action, string $method, string $path, string $body, HttpResult $result,
                             array $meta): void
    {
        // Secrets the answer carries (one-time passwords, the SSO link) are masked too.
        $this->log->addSecretsFromAnswer($result->json);
        $lines = [$method . ' ' . $this->baseUrl . $path];
        foreach ($meta as $name => $value) {
            if ($value !== null) {
                $lines[] = $name . ': ' . $value;
            }
        }
        $request = implode("\n", $lines) . ($body !== '' ? "\n\n" . $body : '');
        $response = $result->networkError()
            ? 'no answer: ' . $result->error . ' (curl error ' . $result->errno . ')'
            : 'HTTP ' . $result->status . "\n\n" . $result->body;
        $this->log->call($action, $request, $response, $result->json ?? '');
    }
}
