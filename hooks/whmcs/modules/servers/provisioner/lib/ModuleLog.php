<?php
/**
 * The module debug log (Utilities > Logs > Module Log), with every secret masked.
 *
 * WHMCS masks the values passed to logModuleCall() in $replaceVars itself; this class
 * masks them before the call as well, so a secret never reaches the log even where a
 * value appears in a form WHMCS would not recognise (JSON-escaped, inside a URL).
 * Secrets that only appear in answers (one-time passwords under "secrets", the
 * single sign-on URL) are added as they are seen.
 */

namespace WHMCS\Module\Server\Provisioner;

final class ModuleLog
{
    public const MODULE = 'provisioner';
    private const MASK = '********';

    /** @var array<string, true> */
    private array $secrets = [];

    /** @param list<string|null> $secrets */
    public function __construct(array $secrets = [])
    {
        $this->addSecrets($secrets);
    }

    /** @param iterable<string|null> $secrets */
    public function addSecrets(iterable $secrets): void
    {
        foreach ($secrets as $secret) {
            if (!is_string($secret) || $secret === '') {
                continue;
            }
            $this->secrets[$secret] = true;
            // The same value as it appears inside a JSON string.
            $escaped = substr((string) json_encode($secret, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE
                | JSON_INVALID_UTF8_SUBSTITUTE), 1, -1);
            if ($escaped !== '') {
                $this->secrets[$escaped] = true;
            }
            $this->secrets[rawurlencode($secret)] = true;
        }
    }

    /** Secrets of an answer: anything under a "secrets" key, and a single sign-on "url". */
    public function addSecretsFromAnswer($decoded): void
    {
        if (!is_array($decoded)) {
            return;
        }
        foreach ($decoded as $key => $value) {
            if ($key === 'secrets' && is_array($value)) {
                $this->addSecrets(array_filter($value, 'is_string'));
            } elseif ($key === 'url' && is_string($value) && str_contains($value, '/sso/')) {
                $this->addSecrets([$value, substr($value, (int) strrpos($value, '/') + 1)]);
            } elseif (is_array($value)) {
                $this->addSecretsFromAnswer($value);
            }
        }
    }

    /** @return list<string> */
    public function replaceVars(): array
    {
        return array_keys($this->secrets);
    }

    public function mask($value)
    {
        if (is_string($value)) {
            $secrets = $this->replaceVars();
            // Longest first, so a secret containing another is masked whole.
            usort($secrets, static fn ($a, $b) => strlen($b) <=> strlen($a));
            return $secrets ? str_replace($secrets, self::MASK, $value) : $value;
        }
        if (is_array($value)) {
            $out = [];
            foreach ($value as $key => $item) {
                $out[$key] = in_array(strtolower((string) $key), ['password', 'servicepassword', 'secrets'], true)
                    && $item !== null && $item !== '' ? self::MASK : $this->mask($item);
            }
            return $out;
        }
        return $value;
    }

    /**
     * One entry of the module log.
     *
     * @param string|array $request
     * @param string|array $response
     * @param mixed        $processed
     */
    public function call(string $action, $request, $response, $processed = ''): void
    {
        if (!function_exists('logModuleCall')) {
            return;
        }
        try {
            logModuleCall(self::MODULE, $action, $this->mask($request), $this->mask($response),
                $this->mask($processed), $this->replaceVars());
        } catch (\Throwable $e) {
            // The log must never break a module command.
        }
    }
}
