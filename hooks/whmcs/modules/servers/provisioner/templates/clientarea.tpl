{* provisioner: the overview tab of an e-mail service (replaces WHMCS's default overview).
   Variables from provisioner_ClientArea: provisionerDomain, provisionerStatus, provisionerLimits
   (label, used, limit), provisionerQuotaGb, provisionerStorageMb, provisionerCanManage,
   provisionerSsoLink, provisionerError. The others are WHMCS's own product details. *}
<div class="provisioner-overview">
    <div class="row">
        <div class="col-sm-6">
            <h3>{$groupname|escape} - {$product|escape}</h3>
            <p>{$provisionerDomain|escape}</p>
        </div>
        <div class="col-sm-6 text-right">
            <span class="label status status-{$rawstatus|strtolower|escape}">{$status|escape}</span>
        </div>
    </div>

    <table class="table table-condensed">
        <tr><td>Registration date</td><td>{$regdate|escape}</td></tr>
        {if $billingcycle}<tr><td>Billing cycle</td><td>{$billingcycle|escape}</td></tr>{/if}
        {if $recurringamount}<tr><td>Recurring amount</td><td>{$recurringamount}</td></tr>{/if}
        {if $nextduedate}<tr><td>Next due date</td><td>{$nextduedate|escape}</td></tr>{/if}
    </table>

    {if $provisionerError}
        <div class="alert alert-warning">{$provisionerError|escape}</div>
    {else}
        <h4>Your mailboxes</h4>
        <table class="table table-striped">
            <thead>
                <tr><th>&nbsp;</th><th class="text-right">In use</th><th class="text-right">Included</th></tr>
            </thead>
            <tbody>
                {foreach from=$provisionerLimits item=row}
                    <tr>
                        <td>{$row.label|escape}</td>
                        <td class="text-right">{$row.used|escape}</td>
                        <td class="text-right">{$row.limit|escape}</td>
                    </tr>
                {/foreach}
                {if $provisionerQuotaGb !== null}
                    <tr><td>Space per mailbox</td><td class="text-right">&nbsp;</td><td class="text-right">{$provisionerQuotaGb|escape} GB</td></tr>
                {/if}
                {if $provisionerStorageMb !== null}
                    <tr><td>Storage used</td><td class="text-right">{$provisionerStorageMb|escape} MB</td><td class="text-right">&nbsp;</td></tr>
                {/if}
            </tbody>
        </table>
    {/if}

    {if $provisionerCanManage}
        <a href="{$provisionerSsoLink|escape}" class="btn btn-primary" target="_blank" rel="noopener">Manage mailboxes</a>
    {elseif $provisionerStatus == 'suspended'}
        <p class="text-muted">Mailbox management is unavailable while the service is suspended.</p>
    {/if}
</div>
