<?php
/** provisioner module: English. Keys are prefixed so they can share WHMCS's $_LANG. */

$_LANG['provisioner_heading'] = 'Your mailboxes';
$_LANG['provisioner_in_use'] = 'In use';
$_LANG['provisioner_included'] = 'Included';
$_LANG['provisioner_unlimited'] = 'unlimited';
$_LANG['provisioner_space_per_mailbox'] = 'Space per mailbox';
$_LANG['provisioner_storage_used'] = 'Storage used';
$_LANG['provisioner_gb'] = '%s GB';
$_LANG['provisioner_mb'] = '%s MB';
$_LANG['provisioner_manage'] = 'Manage mailboxes';
$_LANG['provisioner_suspended'] = 'Mailbox management is unavailable while the service is suspended.';
$_LANG['provisioner_pending'] = 'Your mailboxes are being set up. This page shows them once they are ready.';
$_LANG['provisioner_unavailable'] = 'Your mailbox details cannot be shown right now. Please try again in a few minutes.';
$_LANG['provisioner_sso_unavailable'] = 'Mailbox management cannot be opened right now. Please try again in a few minutes, or contact support.';
$_LANG['provisioner_sso_not_ready'] = 'Your mailboxes are still being set up; mailbox management opens once they are ready.';
$_LANG['provisioner_label_mailboxes'] = 'Mailboxes';
$_LANG['provisioner_label_enhanced_mailboxes'] = 'Enhanced mailboxes';
$_LANG['provisioner_label_light_mailboxes'] = 'Light mailboxes';
$_LANG['provisioner_label_standard_mailboxes'] = 'Standard mailboxes';
$_LANG['provisioner_label_premium_mailboxes'] = 'Premium mailboxes';
$_LANG['provisioner_label_aliases'] = 'Aliases';
$_LANG['provisioner_label_distribution_lists'] = 'Distribution lists';
$_LANG['provisioner_label_mailing_lists'] = 'Mailing lists';
$_LANG['provisioner_label_relay_messages'] = 'Messages';
$_LANG['provisioner_label_relay_max_domains'] = 'Sender domains';
$_LANG['provisioner_downgrade_refused'] = 'This change cannot be made yet: %s';
$_LANG['provisioner_checkout_unavailable'] = 'This change cannot be checked right now. Please try again in a few minutes.';
