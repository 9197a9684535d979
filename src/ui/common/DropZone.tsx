import { type ReactNode, useRef, useState } from 'react';
import { filesFromDrop, filesFromInput, type PickedFile } from './files.ts';

/** An area that accepts dropped files and folders; shows `hint` while something is dragged over it. */
export function DropZone(props: {
  onFiles(files: PickedFile[]): void;
  hint: string;
  children: ReactNode;
  className?: string;
  testId?: string;
}) {
  const [over, setOver] = useState(false);
  // dragenter/dragleave fire for every child element; count them so the hint does not flicker.
  const depth = useRef(0);
  const hasFiles = (event: React.DragEvent) => event.dataTransfer.types.includes('Files');
  return (
    <section
      className={`drop-zone${over ? ' drag-over' : ''}${props.className ? ` ${props.className}` : ''}`}
      data-testid={props.testId}
      aria-label={props.hint}
      onDragEnter={(event) => {
        if (!hasFiles(event)) return;
        event.preventDefault();
        depth.current++;
        setOver(true);
      }}
      onDragOver={(event) => {
        if (!hasFiles(event)) return;
        event.preventDefault();
        event.dataTransfer.dropEffect = 'copy';
      }}
      onDragLeave={() => {
        depth.current = Math.max(0, depth.current - 1);
        if (depth.current === 0) setOver(false);
      }}
      onDrop={(event) => {
        if (!hasFiles(event)) return;
        event.preventDefault();
        depth.current = 0;
        setOver(false);
        void filesFromDrop(event.dataTransfer).then(props.onFiles);
      }}
    >
      {props.children}
      {over && <div className="drop-zone-hint">{props.hint}</div>}
    </section>
  );
}

/** A button that opens the file picker (or a folder picker with `folder`). */
export function FilePickButton(props: {
  label: string;
  onFiles(files: PickedFile[]): void;
  accept?: string;
  multiple?: boolean;
  folder?: boolean;
  testId?: string;
  primary?: boolean;
  disabled?: boolean;
}) {
  return (
    <label className={`button${props.primary ? ' primary' : ''}${props.disabled ? ' disabled' : ''}`}>
      <input
        type="file"
        hidden
        disabled={props.disabled}
        data-testid={props.testId}
        accept={props.accept}
        multiple={props.multiple || props.folder}
        ref={(input) => {
          // React has no prop for the (universally supported) non-standard folder picker attribute.
          if (input && props.folder) input.setAttribute('webkitdirectory', '');
        }}
        onChange={(event) => {
          const files = filesFromInput(event.currentTarget);
          // Reset so that picking the same file again fires another change.
          event.currentTarget.value = '';
          if (files.length > 0) props.onFiles(files);
        }}
      />
      {props.label}
    </label>
  );
}
