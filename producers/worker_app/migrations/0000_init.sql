CREATE TABLE `competition_division` (
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`update_counter` integer DEFAULT 0,
	`id` text PRIMARY KEY NOT NULL,
	`competition_id` text NOT NULL,
	`label` text(255) NOT NULL,
	`max_spots` integer,
	`fee_cents` integer DEFAULT 0 NOT NULL,
	FOREIGN KEY (`competition_id`) REFERENCES `competition`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `competition_group` (
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`update_counter` integer DEFAULT 0,
	`id` text PRIMARY KEY NOT NULL,
	`organizing_team_id` text NOT NULL,
	`slug` text(255) NOT NULL,
	`name` text(255) NOT NULL,
	`description` text(2000),
	FOREIGN KEY (`organizing_team_id`) REFERENCES `team`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `comp_group_slug_team_idx` ON `competition_group` (`organizing_team_id`,`slug`);--> statement-breakpoint
CREATE TABLE `competition_registration` (
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`update_counter` integer DEFAULT 0,
	`id` text PRIMARY KEY NOT NULL,
	`event_id` text NOT NULL,
	`user_id` text NOT NULL,
	`division_id` text,
	`team_name` text(255),
	`registered_at` integer NOT NULL,
	`status` text DEFAULT 'active' NOT NULL,
	`metadata` text,
	FOREIGN KEY (`event_id`) REFERENCES `competition`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`user_id`) REFERENCES `user`(`id`) ON UPDATE cascade ON DELETE cascade,
	FOREIGN KEY (`division_id`) REFERENCES `competition_division`(`id`) ON UPDATE no action ON DELETE set null
);
--> statement-breakpoint
CREATE UNIQUE INDEX `comp_reg_event_user_idx` ON `competition_registration` (`event_id`,`user_id`);--> statement-breakpoint
CREATE INDEX `comp_reg_user_idx` ON `competition_registration` (`user_id`);--> statement-breakpoint
CREATE TABLE `competition` (
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`update_counter` integer DEFAULT 0,
	`id` text PRIMARY KEY NOT NULL,
	`organizing_team_id` text NOT NULL,
	`group_id` text,
	`slug` text(255) NOT NULL,
	`name` text(255) NOT NULL,
	`description` text(2000),
	`start_date` integer NOT NULL,
	`end_date` integer NOT NULL,
	`registration_opens_at` integer,
	`settings` text,
	`visibility` text DEFAULT 'public' NOT NULL,
	FOREIGN KEY (`organizing_team_id`) REFERENCES `team`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`group_id`) REFERENCES `competition_group`(`id`) ON UPDATE no action ON DELETE set null
);
--> statement-breakpoint
CREATE UNIQUE INDEX `competition_slug_unique` ON `competition` (`slug`);--> statement-breakpoint
CREATE INDEX `competition_team_idx` ON `competition` (`organizing_team_id`);--> statement-breakpoint
CREATE INDEX `competition_group_idx` ON `competition` (`group_id`);--> statement-breakpoint
CREATE TABLE `passkey_credential` (
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`update_counter` integer DEFAULT 0,
	`id` text PRIMARY KEY NOT NULL,
	`user_id` text NOT NULL,
	`credential_id` text(255) NOT NULL,
	`credential_public_key` blob NOT NULL,
	`counter` integer DEFAULT 0 NOT NULL,
	`transports` text,
	`last_used_at` integer,
	FOREIGN KEY (`user_id`) REFERENCES `user`(`id`) ON UPDATE cascade ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `passkey_credential_credentialId_unique` ON `passkey_credential` (`credential_id`);--> statement-breakpoint
CREATE INDEX `passkey_user_idx` ON `passkey_credential` (`user_id`);--> statement-breakpoint
CREATE TABLE `score_audit_log` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`score_id` text NOT NULL,
	`action` text NOT NULL,
	`old_value` integer,
	`new_value` integer,
	`changed_at` integer NOT NULL,
	FOREIGN KEY (`score_id`) REFERENCES `score`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `score` (
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`update_counter` integer DEFAULT 0,
	`id` text PRIMARY KEY NOT NULL,
	`user_id` text NOT NULL,
	`competition_id` text NOT NULL,
	`event_name` text(255) NOT NULL,
	`score_value` integer NOT NULL,
	`tie_break` real,
	`status` text DEFAULT 'scored' NOT NULL,
	`is_verified` integer DEFAULT false NOT NULL,
	`scored_at` integer NOT NULL,
	`details` text,
	FOREIGN KEY (`user_id`) REFERENCES `user`(`id`) ON UPDATE cascade ON DELETE cascade,
	FOREIGN KEY (`competition_id`) REFERENCES `competition`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `score_comp_user_event_idx` ON `score` (`competition_id`,`user_id`,`event_name`);--> statement-breakpoint
CREATE INDEX `score_user_idx` ON `score` (`user_id`);--> statement-breakpoint
CREATE TABLE `tag` (
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`update_counter` integer DEFAULT 0,
	`id` text PRIMARY KEY NOT NULL,
	`name` text(100) NOT NULL,
	`color` text(7),
	`use_count` integer DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `tag_name_unique` ON `tag` (`name`);--> statement-breakpoint
CREATE TABLE `team_membership` (
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`update_counter` integer DEFAULT 0,
	`id` text PRIMARY KEY NOT NULL,
	`team_id` text NOT NULL,
	`user_id` text NOT NULL,
	`role_id` text NOT NULL,
	`is_system_role` integer DEFAULT true NOT NULL,
	`invited_by` text,
	`joined_at` integer,
	`expires_at` integer,
	`is_active` integer DEFAULT true NOT NULL,
	FOREIGN KEY (`team_id`) REFERENCES `team`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`user_id`) REFERENCES `user`(`id`) ON UPDATE cascade ON DELETE cascade,
	FOREIGN KEY (`invited_by`) REFERENCES `user`(`id`) ON UPDATE cascade ON DELETE set null
);
--> statement-breakpoint
CREATE INDEX `membership_team_idx` ON `team_membership` (`team_id`);--> statement-breakpoint
CREATE INDEX `membership_user_idx` ON `team_membership` (`user_id`);--> statement-breakpoint
CREATE UNIQUE INDEX `membership_team_user_unique` ON `team_membership` (`team_id`,`user_id`);--> statement-breakpoint
CREATE TABLE `team_role` (
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`update_counter` integer DEFAULT 0,
	`id` text PRIMARY KEY NOT NULL,
	`team_id` text NOT NULL,
	`name` text(255) NOT NULL,
	`description` text(1000),
	`permissions` text NOT NULL,
	`metadata` text(5000),
	`is_editable` integer DEFAULT true NOT NULL,
	FOREIGN KEY (`team_id`) REFERENCES `team`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `team_role_name_unique` ON `team_role` (`team_id`,`name`);--> statement-breakpoint
CREATE TABLE `team` (
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`update_counter` integer DEFAULT 0,
	`id` text PRIMARY KEY NOT NULL,
	`name` text(255) NOT NULL,
	`slug` text(255) NOT NULL,
	`description` text(1000),
	`settings` text(10000),
	`is_personal_team` integer DEFAULT false NOT NULL,
	`personal_team_owner_id` text,
	`credit_balance` integer DEFAULT 0 NOT NULL,
	FOREIGN KEY (`personal_team_owner_id`) REFERENCES `user`(`id`) ON UPDATE cascade ON DELETE set null
);
--> statement-breakpoint
CREATE UNIQUE INDEX `team_slug_unique` ON `team` (`slug`);--> statement-breakpoint
CREATE INDEX `team_slug_idx` ON `team` (`slug`);--> statement-breakpoint
CREATE TABLE `team_tag` (
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`update_counter` integer DEFAULT 0,
	`team_id` text NOT NULL,
	`tag_id` text NOT NULL,
	`note` text(255),
	PRIMARY KEY(`team_id`, `tag_id`),
	FOREIGN KEY (`team_id`) REFERENCES `team`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`tag_id`) REFERENCES `tag`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `user` (
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`update_counter` integer DEFAULT 0,
	`id` text PRIMARY KEY NOT NULL,
	`first_name` text(255),
	`last_name` text(255),
	`email` text(255),
	`password_hash` text,
	`role` text DEFAULT 'user' NOT NULL,
	`email_verified` integer,
	`current_credits` integer DEFAULT 0 NOT NULL,
	`is_active` integer DEFAULT true NOT NULL,
	`gender` text,
	`date_of_birth` integer,
	`athlete_profile` text
);
--> statement-breakpoint
CREATE UNIQUE INDEX `user_email_unique` ON `user` (`email`);--> statement-breakpoint
CREATE INDEX `email_idx` ON `user` (`email`);--> statement-breakpoint
CREATE INDEX `role_idx` ON `user` (`role`);